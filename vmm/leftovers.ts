// Cleanup for the shim's `delete` after a crash: nothing of ours is running any more, only what
// the VM dir and the shared dir say was started.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger, Paths } from '../config/index.js';
import type { PidsFile } from './cloud-hypervisor/hypervisor.js';
import { isRunning, withFields } from './process.js';
import { unmountAndRemove } from './shared-fs.js';

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** SIGKILL pid only if its command line still carries `match` (guards against pid reuse). */
async function killIfOurs(name: string, pid: number, match: string, log: Logger): Promise<void> {
  if (!isRunning(pid)) return;
  if (!cmdline(pid).includes(match)) {
    log.warn('recorded pid is not ours any more; leaving it', { process: name, pid });
    return;
  }
  log.info('killing leftover process', { process: name, pid });
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  for (let i = 0; i < 300 && isRunning(pid); i++) await new Promise((r) => setTimeout(r, 10));
}

/** Kills the recorded VMM/virtiofsd pids, unmounts the shared dir, removes both dirs. Idempotent. */
export async function destroySandboxLeftovers(sandboxId: string, paths: Paths, parentLog: Logger): Promise<void> {
  const log = withFields(parentLog, { subsystem: 'vmm', sandbox: sandboxId });
  const vmDir = paths.vmDir(sandboxId);
  const pidsFile = join(vmDir, 'pids.json');
  if (existsSync(pidsFile)) {
    let pids: PidsFile = {};
    try {
      pids = JSON.parse(readFileSync(pidsFile, 'utf8')) as PidsFile;
    } catch (err) {
      log.warn('cannot read pids.json', { file: pidsFile, error: (err as Error).message });
    }
    const vmm = pids['cloud-hypervisor'];
    if (vmm) await killIfOurs('cloud-hypervisor', vmm.pid, vmm.match, log);
    const vfs = pids.virtiofsd;
    if (vfs) {
      await killIfOurs('virtiofsd', vfs.pid, vfs.match, log);
      for (const child of vfs.children ?? []) await killIfOurs('virtiofsd', child, vfs.match, log);
    }
  }
  const shared = paths.sharedSandboxDir(sandboxId);
  if (existsSync(shared)) await unmountAndRemove(shared, log);
  rmSync(vmDir, { recursive: true, force: true });
}
