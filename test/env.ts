// Where the real external tools live. `.ci/setup` installs them; tests read these paths.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const depsDir = process.env.KATA_TS_DEPS ?? join(repoRoot, '.deps');
export const sharedDir = join(repoRoot, '..', 'shared');
export const upstreamDir = join(sharedDir, 'upstream');
export const openApiPath = join(upstreamDir, 'cloud-hypervisor-openapi.yaml');
export const kataClhTomlIn = join(upstreamDir, 'kata-configuration-clh.toml.in');
export const distDir = join(repoRoot, 'dist');

export const tools = {
  /** virtiofsd 1.13 (trixie) behind a wrapper that uses its private glibc. */
  virtiofsd: join(depsDir, 'bin', 'virtiofsd'),
  runc: '/usr/sbin/runc',
  containerd16: '/usr/bin/containerd',
  containerd17: join(depsDir, 'containerd-1.7', 'usr', 'bin', 'containerd'),
  containerd2: join(depsDir, 'containerd-2', 'usr', 'bin', 'containerd'),
  ctr: '/usr/bin/ctr',
  busybox: '/bin/busybox',
  go: '/usr/bin/go',
  node24: join(depsDir, 'node24', 'bin', 'node'),
  shim: join(distDir, 'containerd-shim-kata-ts-v2'),
  simCloudHypervisor: join(distDir, 'sim', 'cloud-hypervisor'),
  simKataAgent: join(distDir, 'sim', 'kata-agent'),
};

/** Returns a reason string when a tool is missing (for skip messages), else undefined. */
export function missing(...paths: string[]): string | undefined {
  const gone = paths.filter((p) => !existsSync(p));
  return gone.length ? `not installed: ${gone.join(', ')} (run .ci/setup)` : undefined;
}
