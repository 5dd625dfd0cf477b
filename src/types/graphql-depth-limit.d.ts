// graphql-depth-limit ships no types and @types has none; this is the one function we use.
declare module 'graphql-depth-limit' {
  import type { ValidationRule } from 'graphql';
  export default function depthLimit(maxDepth: number, options?: { ignore?: Array<string | RegExp> }): ValidationRule;
}
