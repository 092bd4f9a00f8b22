/** Why a VM ended. */
export interface VmExit {
  /** `stopped`: stop() was called; otherwise something died on its own. */
  reason: 'stopped' | 'vmm-exited' | 'virtiofsd-exited' | 'guest-shutdown';
  /** Human text for the log, e.g. "cloud-hypervisor (pid 123) exited with signal SIGKILL". */
  detail: string;
}

/** Where the kata-agent is reachable: hybrid vsock over the VMM's Unix socket. */
export interface AgentAddress {
  socketPath: string;
  port: number;
}

/**
 * The VM a sandbox runs in. The sandbox core only uses this; one implementation per VMM.
 * Every method that starts something cleans up what it started when it fails.
 */
export interface Hypervisor {
  /** Starts virtiofsd and the VMM, creates and boots the VM. */
  start(signal?: AbortSignal): Promise<void>;
  /** Graceful stop (vm.shutdown, vmm.shutdown), then signals with deadlines; removes sockets and the VM dir. Idempotent. */
  stop(): Promise<void>;
  /** Settles once, when the VM is gone: after stop(), or when the VMM or virtiofsd dies on its own. */
  wait(): Promise<VmExit>;
  /** The agent's address inside this VM. */
  agentAddress(): AgentAddress;
  /** Host pids of the VMM and its helper daemons (for logs and metrics). */
  pids(): number[];
  /** Resizes the running VM to this many vCPUs and bytes of memory (vm.resize). */
  resize(vcpus: number, memoryBytes: number): Promise<void>;
  /** Device counters (vm.counters). */
  counters(): Promise<Record<string, Record<string, number>>>;
}
