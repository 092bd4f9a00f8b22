// `delete`: containerd runs it whenever its connection for a task closes (normal removal or a
// dead shim). Best-effort cleanup of what a dead daemon left, then DeleteResponse{137}. Fast and
// idempotent: it runs once per container, usually when there is nothing left to do.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ShimFlags } from './cli.js';
import { readEnv } from './cli.js';
import { describe } from './errors.js';
import type { Logger } from './log.js';
import { containerKind, encodeDeleteResponse, socketAddress, socketPath } from './protocol.js';
import { canConnect } from './start.js';

/** 128 + SIGKILL, what Kata reports for a task cleaned up by `delete`. */
export const DELETE_EXIT_STATUS = 137;

function annotationsOf(bundle: string): Record<string, string> | undefined {
  try {
    return JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'))?.annotations ?? undefined;
  } catch {
    return undefined;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}

/**
 * Fast path: `delete` runs after every normal removal, when the daemon already cleaned up. Kata's
 * fixed host paths (config/paths.ts) tell whether there is anything to do before loading the
 * VM layer.
 */
function somethingToClean(id: string, kind: ReturnType<typeof containerKind>): boolean {
  const sandbox = kind.kind === 'container' ? kind.sandboxId : id;
  const shared = join('/run/kata-containers/shared/sandboxes', sandbox);
  if (kind.kind === 'container') return existsSync(join(shared, 'mounts', id));
  return existsSync(join('/run/vc/vm', id)) || existsSync(shared);
}

export async function runDelete(o: { flags: ShimFlags; env: NodeJS.ProcessEnv; cwd: string; log: Logger; now?: () => number }): Promise<Uint8Array> {
  const { flags, log } = o;
  const bundle = flags.bundle || o.cwd;
  const id = flags.id;
  const kind = containerKind(id, annotationsOf(bundle));
  const env = readEnv(o.env, flags);
  try {
    if (id && somethingToClean(id, kind)) {
      const [{ kataPaths }, vmm] = await Promise.all([import('../config/index.js'), import('../vmm/index.js')]);
      if (kind.kind === 'container') {
        const fs = vmm.createSharedFs({ sandboxId: kind.sandboxId, paths: kataPaths, log });
        await withTimeout(fs.unshareRootfs(id), 3000, `unsharing the rootfs of ${id}`);
      } else {
        await withTimeout(vmm.destroySandboxLeftovers(id, kataPaths, log), 4000, `cleaning up sandbox ${id}`);
      }
    }
    if (id && kind.kind !== 'container') {
      // A daemon that died leaves its socket; a live one keeps it.
      const path = socketPath(socketAddress({ grpcAddress: flags.address || env.grpcAddress, namespace: flags.namespace, id }));
      if (existsSync(path) && !(await canConnect(path, 300))) rmSync(path, { force: true });
    }
  } catch (err) {
    // stderr only becomes a warning in containerd's log; the answer stays the same.
    log.warn('delete: cleanup incomplete', { id, error: describe(err) });
  }
  return encodeDeleteResponse({ pid: 0, exitStatus: DELETE_EXIT_STATUS, exitedAtMs: (o.now ?? Date.now)() });
}
