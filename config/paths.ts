import { join } from 'node:path';

/** Kata's host paths for one sandbox; passed down so tests can use temp roots. */
export interface Paths {
  /** `/run/vc/vm/<id>`: the VMM's dir (clh-api.sock, clh.sock, virtiofsd.sock, pids.json). */
  vmDir(id: string): string;
  /** `/run/kata-containers/shared/sandboxes/<id>`: mounts/, shared/, private/. */
  sharedSandboxDir(id: string): string;
  /** Where the guest mounts the virtio-fs share (trailing slash as Kata sends it). */
  guestSharedDir: string;
}

const guestSharedDir = '/run/kata-containers/shared/containers/';

/** The same layout below `root` (for tests). `pathsUnder('/')` equals `kataPaths`. */
export function pathsUnder(root: string): Paths {
  return {
    vmDir: (id) => join(root, 'run/vc/vm', id),
    sharedSandboxDir: (id) => join(root, 'run/kata-containers/shared/sandboxes', id),
    // The guest path never moves: it is inside the VM, not below our root.
    guestSharedDir,
  };
}

export const kataPaths: Paths = pathsUnder('/');
