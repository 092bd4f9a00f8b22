// The kata-agent client: hybrid-vsock dialing, one method per agent RPC with Kata's deadlines,
// the OCI spec rewrite for the guest, and stdio pumps.
export { dialAgent, connectHybridVsock, HandshakeError, HANDSHAKE_TIMEOUT_MS, type DialOptions } from './dial.js';
export { AgentClient, AGENT_SERVICE, HEALTH_SERVICE, DEFAULT_TIMEOUT_MS, CHECK_TIMEOUT_MS } from './client.js';
export { AgentError, AgentClosedError, AgentDialError, AgentSpecError } from './errors.js';
export {
  toGuestSpec, toGuestProcess, toGuestResources, sharedFsStorage, shmStorage,
  GUEST_SHARED_DIR, GUEST_SANDBOX_SHM, DEFAULT_SHM_SIZE, type GuestSpecOptions,
} from './spec.js';
export { pumpOutput, pumpInput, STREAM_CHUNK, STDIN_CHUNK } from './pump.js';
export type { Logger } from './log.js';
