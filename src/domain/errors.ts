/**
 * Domain errors: the only errors services throw on purpose. The GraphQL and HTTP layers map
 * `code` to their own vocabulary (src/graphql/format-error.ts); anything else is a bug and is
 * masked there.
 */
export type DomainErrorCode =
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_IMAGE'
  | 'SERVICE_UNAVAILABLE';

export class DomainError extends Error {
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class InvalidInputError extends DomainError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('BAD_USER_INPUT', message, details);
  }
}

export class NotFoundError extends DomainError {
  constructor(what: string, id: string) {
    super('NOT_FOUND', `${what} ${JSON.stringify(id)} not found`, { id });
  }
}

export class PayloadTooLargeError extends DomainError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('PAYLOAD_TOO_LARGE', message, details, options);
  }
}

export class UnsupportedImageError extends DomainError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNSUPPORTED_IMAGE', message, {}, options);
  }
}

export class ServiceUnavailableError extends DomainError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SERVICE_UNAVAILABLE', message, {}, options);
  }
}
