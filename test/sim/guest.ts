// The contract between the two simulators: what the cloud-hypervisor simulator tells the
// kata-agent simulator about "its" VM. A real guest learns these from the kernel command line,
// the virtio devices it sees and the vsock device; here they travel in one JSON file.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';

/** A virtio-fs device as the guest sees it: the tag, and where virtiofsd really serves it from. */
export interface GuestFs {
  tag: string;
  /** virtiofsd's --shared-dir, found from the virtiofsd process (never given by the runtime). */
  hostDir: string;
}

/** `<guestDir>/guest.json`, written by the VMM simulator before it starts the agent. */
export interface GuestView {
  /** payload.cmdline of the VM. */
  cmdline: string;
  fs: GuestFs[];
  /** The guest's vsock: a guest listening on port P binds `<vsockDir>/<P>`. */
  vsockDir: string;
  /** Private scratch dir of the guest (bundles, runc root); removed when the guest ends. */
  guestDir: string;
  /** cgroup (v1 path, e.g. `/kata-ts-sim/vm-123`) under which the guest puts its containers, or '' when none. */
  cgroupParent: string;
  vcpus: number;
  memoryBytes: number;
  /** Fault knobs forwarded from the VMM's environment. */
  bootDelayMs: number;
  neverListen: boolean;
}

export const guestViewFile = 'guest.json';

export function readGuestView(file: string): GuestView {
  const v = JSON.parse(readFileSync(file, 'utf8')) as GuestView;
  for (const k of ['cmdline', 'vsockDir', 'guestDir'] as const) {
    if (typeof v[k] !== 'string') throw new Error(`guest view ${file}: ${k} must be a string`);
  }
  return v;
}

/** Kernel command line → key/value map (flags without `=` get ''); later keys win, as in the agent. */
export function parseCmdline(cmdline: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const w of cmdline.split(/\s+/).filter(Boolean)) {
    const i = w.indexOf('=');
    if (i < 0) m.set(w, '');
    else m.set(w.slice(0, i), w.slice(i + 1));
  }
  return m;
}

/** Mount points at or below dir (deepest first), from /proc/self/mountinfo. */
export function mountsUnder(dir: string): string[] {
  const unescape = (p: string) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  let info = '';
  try { info = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return []; }
  const base = dir.replace(/\/+$/, '');
  return info.split('\n').map((l) => l.split(' ')[4]).filter((p): p is string => !!p).map(unescape)
    .filter((p) => p === base || p.startsWith(base + '/')).sort((a, b) => b.length - a.length);
}

/** Where a guest mounts container rootfs: like a real guest's own mount tree, reachable by any
 *  uid (dirs 0711) whatever the permissions of the folders above $TMPDIR (a container whose user
 *  namespace maps root to another uid must reach its rootfs). Derived from the guest dir's name. */
export const guestMountsRoot = '/run/kata-ts-sim/guests';
export function guestMountDir(guestDir: string): string {
  return join(guestMountsRoot, basename(guestDir));
}

/** Removes a guest's private dir and its mount dir, each only once nothing is mounted below it
 *  (the guest binds container rootfs and its network namespace there: a recursive removal
 *  through a live bind would delete the container's files). Returns the mounts that could not
 *  be detached. */
export function removeGuestDir(dir: string): string[] {
  const left: string[] = [];
  for (const d of [guestMountDir(dir), dir]) {
    for (const m of mountsUnder(d)) {
      try { execFileSync('umount', ['--lazy', m], { stdio: 'ignore' }); } catch { /* reported below */ }
    }
    const busy = mountsUnder(d);
    if (busy.length === 0) rmSync(d, { recursive: true, force: true });
    left.push(...busy);
  }
  return left;
}
