/** The connection is gone (EOF, EPIPE, ECONNRESET, closed locally): every pending and later call fails with it. */
export class ClosedError extends Error {
  readonly code = 'TTRPC_CLOSED' as const;
  constructor(message = 'ttrpc: closed', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClosedError';
  }
}

/** Client.connect could not reach the address (or gave up after its timeout). */
export class ConnectError extends Error {
  readonly code = 'TTRPC_CONNECT' as const;
  constructor(readonly address: string, why: string, options?: { cause?: unknown }) {
    super(`ttrpc: cannot connect to ${JSON.stringify(address)}: ${why}`, options);
    this.name = 'ConnectError';
  }
}

/** An address, listen target or registration that can't be used, with the reason. */
export class UsageError extends Error {
  readonly code = 'TTRPC_USAGE' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageError';
  }
}
