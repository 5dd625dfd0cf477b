/** Guards states that only a bug can produce (graphql-js style); never used for user input. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`Invariant violation: ${message}`);
}
