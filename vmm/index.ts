// The VM layer's public surface.
import type { KataConfig, Logger, Paths } from '../config/index.js';
import { CloudHypervisor } from './cloud-hypervisor/hypervisor.js';
import type { Hypervisor } from './hypervisor.js';

export type { Hypervisor, VmExit, AgentAddress } from './hypervisor.js';
export { VmmError, ClhApiError, type VmmErrorCode } from './errors.js';
export { createSharedFs, type SharedFs, type RootfsMount } from './shared-fs.js';
export { destroySandboxLeftovers } from './leftovers.js';
export { buildVmConfig, kernelCmdline } from './cloud-hypervisor/vm-config.js';

/**
 * The cloud-hypervisor VM of one sandbox. start() runs virtiofsd on `<sharedSandboxDir>/shared`
 * (SharedFs.sharedDir; set it up first), then cloud-hypervisor, then creates and boots the VM.
 * `resources` are the VM's totals (vCPUs, MiB) when they differ from the config's defaults.
 */
export function createCloudHypervisor(o: {
  sandboxId: string;
  config: KataConfig;
  paths: Paths;
  log: Logger;
  resources?: { vcpus?: number; memoryMiB?: number };
}): Hypervisor {
  return new CloudHypervisor(o);
}
