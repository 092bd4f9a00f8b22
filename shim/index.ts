// The shim's public surface (the binary's entry is main.ts). Nothing in the other folders
// imports the shim; this is for tests and benchmarks.
export { parseArgs, readEnv, daemonArgs, type ShimArgs, type ShimFlags, type ShimEnv, type Action } from './cli.js';
export {
  socketAddress, socketPath, parseStartStdin, answerForm, encodeAnswer, encodeDeleteResponse, encodeRuntimeInfo,
  containerKind, runtimeOptionsConfigPath, RUNTIME_NAME, SHIM_VERSION, TASK_API_VERSION, type AnswerForm, type StartStdin,
} from './protocol.js';
export { runStart, createListener, containerdVersion, SOCKET_PATH_ENV, type StartResult } from './start.js';
export { runDelete, DELETE_EXIT_STATUS } from './delete.js';
export { TaskService, VM_READY_BOUND_MS, type TaskServiceOptions } from './service.js';
export { TASK_TABLE, taskHandlers, type TaskMethod } from './task-table.js';
export { Sandbox, realParts, type SandboxParts, type SandboxState } from './sandbox.js';
export { EventPublisher, type EventSink, type QueuedEvent } from './events.js';
export { parseStdio, openProcessIO, type StdioSpec, type ProcessIO } from './stdio.js';
export { toStatus, statusCodeOf } from './status.js';
export { metricsAny, hostCgroupMode } from './stats.js';
export { createLogger, formatLine, type Logger } from './log.js';
export * from './errors.js';
