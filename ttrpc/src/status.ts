/** gRPC status codes, as carried in google.rpc.Status.code. */
export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/** google.protobuf.Any as carried in Status.details. */
export interface StatusDetail {
  typeUrl: string;
  value: Uint8Array;
}

/** A ttrpc status: from the peer, or raised by a handler to answer with that code. */
export class StatusError extends Error {
  readonly code: Code;
  readonly details: StatusDetail[];

  constructor(code: Code, message: string, details: StatusDetail[] = []) {
    super(message);
    this.name = 'StatusError';
    this.code = code;
    this.details = details;
  }

  override toString(): string {
    return `StatusError: ${Code[this.code] ?? this.code}: ${this.message}`;
  }
}

export const MAX_MESSAGE = 4 << 20;

export function oversizeError(length: number): StatusError {
  return new StatusError(Code.RESOURCE_EXHAUSTED, `message length ${length} exceed maximum message size of ${MAX_MESSAGE}`);
}
