// ttrpc-ts: containerd's ttrpc for Node.js. Wire rules: ../PROTOCOL.md.
export { Code, StatusError, MAX_MESSAGE, type StatusDetail } from './status.js';
export { ClosedError, ConnectError, UsageError } from './errors.js';
export type { Logger } from './log.js';
export type { Metadata } from './metadata.js';
export { Client, ClientStream, type CallOptions, type StreamOptions } from './client.js';
export { Server, type CallContext, type UnaryHandler, type StreamHandler, type ServerStream } from './server.js';
export { socketPath } from './address.js';
