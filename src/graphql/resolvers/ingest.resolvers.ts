import { InvalidInputError } from '../../domain/errors.js';
import type { ImageSource } from '../../services/image-source.js';
import type { IngestImageInput, Resolvers } from '../__generated__/resolvers-types.js';

export const ingestResolvers: Resolvers = {
  Mutation: {
    ingestImage: (_root, { input }, ctx) =>
      ctx.services.ingest.ingestImage({ source: toSource(input), altText: input.altText, metadata: input.metadata }),
  },
};

/** Exactly one byte source: a multipart upload or base64 text. */
function toSource(input: IngestImageInput): ImageSource {
  const { file, base64 } = input;
  if ((file == null) === (base64 == null)) {
    throw new InvalidInputError('Give exactly one of input.file (multipart upload) or input.base64', { argument: 'input' });
  }
  if (base64 != null) return { kind: 'base64', data: base64 };
  return { kind: 'stream', open: async () => (await file!).createReadStream() };
}
