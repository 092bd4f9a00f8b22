// Errors of the agent client: one class per way a call can fail, each with a stable `code`.

/** The agent answered a call with an error status. */
export class AgentError extends Error {
  readonly code = 'AGENT_RPC' as const;
  constructor(
    /** The AgentService/Health method, e.g. `CreateContainer`. */
    readonly method: string,
    /** The gRPC status code the agent sent (or DEADLINE_EXCEEDED/CANCELLED raised locally). */
    readonly grpcCode: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`agent ${method}: ${message}`, options);
    this.name = 'AgentError';
  }
}

/** The connection to the agent is gone; the call's outcome is unknown. */
export class AgentClosedError extends Error {
  readonly code = 'AGENT_CLOSED' as const;
  constructor(message = 'agent connection closed', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentClosedError';
  }
}

/** The agent never answered on its vsock port within the dial timeout (or dialing was aborted). */
export class AgentDialError extends Error {
  readonly code = 'AGENT_DIAL' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentDialError';
  }
}

/** An OCI spec (or other input) that cannot be turned into the agent's message. */
export class AgentSpecError extends Error {
  readonly code = 'AGENT_SPEC' as const;
  constructor(
    /** JSON path of the offending value, e.g. `linux.resources.memory.limit`. */
    readonly path: string,
    why: string,
  ) {
    super(`OCI spec ${path}: ${why}`);
    this.name = 'AgentSpecError';
  }
}
