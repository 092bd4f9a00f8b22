// The contract between the two simulators: what the cloud-hypervisor simulator tells the
// kata-agent simulator about "its" VM. A real guest learns these from the kernel command line,
// the virtio devices it sees and the vsock device; here they travel in one JSON file.
import { readFileSync } from 'node:fs';

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
