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
  | 'SERVICE_UNAVAILABLE'
  | 'ORIGINAL_MISSING'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN';

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

/**
 * An image's row exists but its original bytes are gone from DATA_DIR (deleted or lost by hand):
 * a fault of the server's storage, not of the request, so it gets its own code rather than a
 * masked internal error or a NOT_FOUND that the listing would contradict.
 */
export class OriginalMissingError extends DomainError {
  constructor(sha256: string, options?: { cause?: unknown }) {
    super('ORIGINAL_MISSING', `the stored original of this image (sha256 ${sha256}) is missing from DATA_DIR; restore the file or delete the image`, { sha256 }, options);
  }
}

export class ServiceUnavailableError extends DomainError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SERVICE_UNAVAILABLE', message, {}, options);
  }
}

/** No key, or a key that is unknown or revoked, where the request needs one (docs/security.md). */
export class UnauthenticatedError extends DomainError {
  constructor(message = 'An API key is required: send Authorization: Bearer <key> (docs/security.md)') {
    super('UNAUTHENTICATED', message);
  }
}

/** A valid key (or a keyless local request) whose scope does not cover the operation. */
export class ForbiddenError extends DomainError {
  constructor(required: string, held: string) {
    super('FORBIDDEN', `This needs the ${required} scope; the request has ${held}`, { requiredScope: required, scope: held });
  }
}
