// extract-files ships JSDoc-typed .mjs modules without .d.ts files.
declare module 'extract-files/extractFiles.mjs' {
  export type ObjectPath = string;
  export interface Extraction<Extractable> {
    clone: unknown;
    files: Map<Extractable, ObjectPath[]>;
  }
  export default function extractFiles<Extractable>(
    value: unknown,
    isExtractable: (value: unknown) => value is Extractable,
    path?: ObjectPath,
  ): Extraction<Extractable>;
}
declare module 'extract-files/isExtractableFile.mjs' {
  export type ExtractableFile = File | Blob;
  export default function isExtractableFile(value: unknown): value is ExtractableFile;
}
