import { InvalidInputError } from '../../domain/errors.js';
import type { ImageSource } from '../../services/image-source.js';
import type { InputMaybe, Scalars } from '../__generated__/resolvers-types.js';

/** IngestImageInput and ImageQueryInput: exactly one byte source, a multipart upload or base64 text. */
export function toImageSource(input: { file?: InputMaybe<Scalars['Upload']['input']>; base64?: InputMaybe<string> }): ImageSource {
  const { file, base64 } = input;
  if ((file == null) === (base64 == null)) {
    throw new InvalidInputError('Give exactly one of input.file (multipart upload) or input.base64', { argument: 'input' });
  }
  if (base64 != null) return { kind: 'base64', data: base64 };
  return { kind: 'stream', open: async () => (await file!).createReadStream() };
}
