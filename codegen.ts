import type { CodegenConfig } from '@graphql-codegen/cli';

// Schema-first: resolver signatures are generated from schema.graphql so that resolvers, the
// context and the domain mappers cannot drift from the contract. Run `npm run codegen`.
const config: CodegenConfig = {
  schema: 'schema.graphql',
  generates: {
    'src/graphql/__generated__/resolvers-types.ts': {
      plugins: ['typescript', 'typescript-resolvers'],
      config: {
        useIndexSignature: true,
        useTypeImports: true,
        contextType: '../context.js#GraphQLContext',
        mappers: {
          Image: '../../domain/image.js#ImageRecord',
          Job: '../../domain/job.js#JobRecord',
        },
        scalars: { Upload: 'Promise<import("graphql-upload/processRequest.mjs").FileUpload>', JSON: 'unknown', DateTime: 'Date' },
        enumsAsTypes: true,
        avoidOptionals: { field: true, inputValue: false, object: false, defaultValue: false },
      },
    },
  },
};
export default config;
