// The virtio-fs share of one sandbox, laid out as Kata does (kata-agent.md §6):
//   <sharedSandboxDir>/mounts/   where we mount things for the guest (a shared mount point)
//   <sharedSandboxDir>/shared/   read-only bind of mounts/ with slave propagation: virtiofsd's --shared-dir
//   <sharedSandboxDir>/private/  scratch for private mounts
// Mounts go through mount(8)/umount(8) (execFile, never a shell).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import type { Logger, Paths } from '../config/index.js';
import { VmmError } from './errors.js';
import { withFields } from './process.js';

const run = promisify(execFile);
const MOUNT = '/bin/mount';
const UMOUNT = '/bin/umount';

export interface RootfsMount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** The per-sandbox share virtiofsd exports. */
export interface SharedFs {
  /** virtiofsd's --shared-dir. */
  readonly sharedDir: string;
  /** Creates mounts/, shared/ (ro, slave bind of mounts/), private/. */
  setup(): Promise<void>;
  /** Mounts containerd's rootfs list (or binds bundle/rootfs when empty) at mounts/<cid>/rootfs; returns the guest path. */
  shareRootfs(containerId: string, rootfs: RootfsMount[], bundle: string): Promise<string>;
  /**
   * Shares a host file or directory that the container bind-mounts (Kata's shared bind volume):
   * bound at mounts/<cid>-<16 hex>-<basename of destination>, read-only when asked (built in
   * private/ first, so the guest never sees it writable); returns the guest path.
   */
  shareBindMount(containerId: string, source: string, destination: string, o: { readonly: boolean; recursive: boolean }): Promise<string>;
  /** Unmounts and removes mounts/<cid> and the container's shared bind mounts. */
  unshareRootfs(containerId: string): Promise<void>;
  /** Unmounts everything below the sandbox dir and removes it. */
  teardown(): Promise<void>;
}

async function mount(args: string[]): Promise<void> {
  try {
    await run(MOUNT, args);
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
    throw new VmmError('SHARED_FS', `mount ${args.join(' ')} failed: ${stderr || (err as Error).message}`, { cause: err });
  }
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below dir, deepest (latest) first, from /proc/self/mountinfo. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp === undefined) continue;
    const p = unescapeMountinfo(mp);
    if (p === dir || p.startsWith(prefix)) out.push(p);
  }
  // mountinfo lists in mount order; unmount in reverse (stacked mounts repeat the same path).
  return out.reverse();
}

/** umount, falling back to a lazy (detach) umount when busy; errors name the path. */
export async function unmount(path: string, log: Logger): Promise<void> {
  try {
    await run(UMOUNT, [path]);
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
    log.warn('umount failed; detaching lazily', { path, error: stderr || (err as Error).message });
    try {
      await run(UMOUNT, ['-l', path]);
    } catch (err2) {
      throw new VmmError('SHARED_FS', `cannot unmount ${path}: ${String((err2 as { stderr?: string }).stderr ?? '').trim() || (err2 as Error).message}`, { cause: err2 });
    }
  }
}

/** Unmounts everything at or below dir (deepest first), then removes dir; refuses to rm across a mount. */
export async function unmountAndRemove(dir: string, log: Logger): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const mps = mountsUnder(dir);
    if (mps.length === 0) break;
    for (const mp of mps) await unmount(mp, log).catch((err) => log.error('unmount failed', { path: mp, error: (err as Error).message }));
  }
  const left = mountsUnder(dir);
  if (left.length) throw new VmmError('SHARED_FS', `cannot remove ${dir}: still mounted: ${left.join(', ')}`);
  rmSync(dir, { recursive: true, force: true });
}

const validId = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

class KataSharedFs implements SharedFs {
  readonly sharedDir: string;
  readonly #root: string;
  readonly #mounts: string;
  readonly #private: string;
  readonly #guestDir: string;
  readonly #log: Logger;

  constructor(o: { sandboxId: string; paths: Paths; log: Logger }) {
    if (!validId.test(o.sandboxId)) throw new VmmError('SHARED_FS', `invalid sandbox id "${o.sandboxId}"`);
    this.#root = o.paths.sharedSandboxDir(o.sandboxId);
    this.#mounts = join(this.#root, 'mounts');
    this.sharedDir = join(this.#root, 'shared');
    this.#private = join(this.#root, 'private');
    this.#guestDir = o.paths.guestSharedDir;
    this.#log = withFields(o.log, { subsystem: 'vmm', sandbox: o.sandboxId });
  }

  async setup(): Promise<void> {
    try {
      for (const d of [this.#mounts, this.sharedDir, this.#private]) mkdirSync(d, { recursive: true, mode: 0o750 });
      // mounts/ becomes its own shared mount so propagation to shared/ works whatever the
      // propagation of the filesystem it lives on.
      await mount(['--bind', this.#mounts, this.#mounts]);
      await mount(['--make-shared', this.#mounts]);
      await mount(['--bind', this.#mounts, this.sharedDir]);
      await mount(['--make-slave', this.sharedDir]);
      await mount(['-o', 'remount,bind,ro', this.sharedDir]);
    } catch (err) {
      await this.teardown().catch((e) => this.#log.error('cleanup after failed setup failed', { error: (e as Error).message }));
      throw err;
    }
  }

  async shareRootfs(containerId: string, rootfs: RootfsMount[], bundle: string): Promise<string> {
    if (!validId.test(containerId)) throw new VmmError('SHARED_FS', `invalid container id "${containerId}"`);
    const dir = join(this.#mounts, containerId);
    const target = join(dir, 'rootfs');
    if (existsSync(dir)) throw new VmmError('SHARED_FS', `rootfs of container ${containerId} is already shared at ${target}`);
    mkdirSync(target, { recursive: true, mode: 0o750 });
    try {
      if (rootfs.length === 0) {
        await mount(['--bind', join(bundle, 'rootfs'), target]);
      }
      for (const m of rootfs) {
        if (m.type === 'bind' || m.type === 'rbind' || m.options.includes('bind') || m.options.includes('rbind')) {
          const opts = m.options.length ? m.options : ['bind'];
          await mount(['-o', opts.join(','), m.source, target]);
        } else {
          await mount(['-t', m.type, ...(m.options.length ? ['-o', m.options.join(',')] : []), m.source, target]);
        }
      }
    } catch (err) {
      await unmountAndRemove(dir, this.#log).catch((e) => this.#log.error('cleanup after failed rootfs mount failed', { error: (e as Error).message }));
      throw err;
    }
    return posix.join(this.#guestDir, containerId, 'rootfs');
  }

  async shareBindMount(containerId: string, source: string, destination: string, o: { readonly: boolean; recursive: boolean }): Promise<string> {
    if (!validId.test(containerId)) throw new VmmError('SHARED_FS', `invalid container id "${containerId}"`);
    let isDir: boolean;
    try {
      isDir = statSync(source).isDirectory();
    } catch (err) {
      throw new VmmError('SHARED_FS', `cannot share the bind mount ${destination} of container ${containerId}: source ${source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    const name = `${containerId}-${randomBytes(8).toString('hex')}-${posix.basename(destination) || 'root'}`;
    const target = join(this.#mounts, name);
    const mountPoint = (p: string) => (isDir ? mkdirSync(p, { mode: 0o750 }) : writeFileSync(p, '', { mode: 0o640 }));
    const bind = o.recursive ? '--rbind' : '--bind';
    mountPoint(target);
    try {
      if (o.readonly) {
        const staging = join(this.#private, name);
        mountPoint(staging);
        try {
          await mount([bind, source, staging]);
          await mount(['-o', 'remount,bind,ro', staging]);
          await mount([bind, staging, target]);
        } finally {
          await unmountAndRemove(staging, this.#log);
        }
      } else {
        await mount([bind, source, target]);
      }
    } catch (err) {
      await unmountAndRemove(target, this.#log).catch((e) => this.#log.error('cleanup after failed bind share failed', { error: (e as Error).message }));
      throw err;
    }
    return posix.join(this.#guestDir, name);
  }

  async unshareRootfs(containerId: string): Promise<void> {
    if (!validId.test(containerId)) throw new VmmError('SHARED_FS', `invalid container id "${containerId}"`);
    const binds = new RegExp(`^${containerId.replace(/[.]/g, '\\.')}-[0-9a-f]{16}-`);
    for (const name of existsSync(this.#mounts) ? readdirSync(this.#mounts) : []) {
      if (binds.test(name)) await unmountAndRemove(join(this.#mounts, name), this.#log);
    }
    await unmountAndRemove(join(this.#mounts, containerId), this.#log);
  }

  async teardown(): Promise<void> {
    if (!existsSync(this.#root)) return;
    // Containers first (below mounts/), then shared/ and mounts/ themselves.
    if (existsSync(this.#mounts)) {
      for (const cid of readdirSync(this.#mounts)) await unmountAndRemove(join(this.#mounts, cid), this.#log);
    }
    await unmountAndRemove(this.#root, this.#log);
  }
}

export function createSharedFs(o: { sandboxId: string; paths: Paths; log: Logger }): SharedFs {
  return new KataSharedFs(o);
}

