// Errors of the cloud-hypervisor simulator. An ApiError answers an HTTP request: the status and
// the message chain (outermost first) that cloud-hypervisor v47+ sends as a JSON array.

export class ApiError extends Error {
  readonly code = 'CH_SIM_API';
  constructor(readonly status: number, readonly chain: string[], options?: { cause?: unknown }) {
    super(chain.join(': '), options);
  }
}

/** A VMM-side failure (wrong state, device error): always HTTP 500, as the real server answers. */
export function vmmError(...chain: string[]): ApiError {
  return new ApiError(500, ['API request failed', ...chain]);
}

/** Bad command line: printed clap-style, exit status 2 (usage) or 1 (semantic). */
export class CliError extends Error {
  readonly code = 'CH_SIM_CLI';
  constructor(message: string, readonly exitStatus: 1 | 2) {
    super(message);
  }
}
