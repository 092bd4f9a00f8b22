// Finds what a virtio-fs backend really serves, the way nothing but the host can: the process
// holding the vhost-user socket (via /proc/net/unix inodes and /proc/<pid>/fd), then its
// --shared-dir (or legacy `-o source=`) from /proc/<pid>/cmdline. The runtime never tells us.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Inodes of every Unix socket bound to `path` (the listener and its accepted connections). */
export function socketInodes(path: string): Set<string> {
  const inodes = new Set<string>();
  const lines = readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1);
  for (const line of lines) {
    const cols = line.trim().split(/\s+/);
    if (cols.length >= 8 && cols[7] === path) inodes.add(cols[6]);
  }
  return inodes;
}

export function pidsHolding(inodes: Set<string>, exclude = process.pid): number[] {
  const pids: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent) || Number(ent) === exclude) continue;
    let fds: string[];
    try { fds = readdirSync(`/proc/${ent}/fd`); } catch { continue; }
    for (const fd of fds) {
      let target: string;
      try { target = readlinkSync(`/proc/${ent}/fd/${fd}`); } catch { continue; }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1])) { pids.push(Number(ent)); break; }
    }
  }
  return pids;
}

/** The shared dir from a virtiofsd command line, or undefined. */
export function sharedDirFromArgs(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--shared-dir' && i + 1 < args.length) return args[i + 1];
    if (a.startsWith('--shared-dir=')) return a.slice('--shared-dir='.length);
    if (a === '-o' && i + 1 < args.length) {
      const src = args[i + 1].split(',').find((o) => o.startsWith('source='));
      if (src) return src.slice('source='.length);
    }
  }
  return undefined;
}

/** The directory the backend on `socketPath` serves; throws naming the socket when it can't tell. */
export function findSharedDir(socketPath: string): { pid: number; sharedDir: string } {
  const inodes = socketInodes(socketPath);
  if (inodes.size === 0) throw new Error(`no Unix socket is bound to ${socketPath}`);
  const pids = pidsHolding(inodes);
  for (const pid of pids) {
    let args: string[];
    try { args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean); } catch { continue; }
    const sharedDir = sharedDirFromArgs(args);
    if (sharedDir) return { pid, sharedDir };
  }
  throw new Error(`no process holding ${socketPath} has a --shared-dir (pids: ${pids.join(', ') || 'none'})`);
}
