// Builds a busybox OCI image archive locally (no registry): one layer with Debian's static
// busybox and its applet links, an image config, a manifest, index.json and oci-layout.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const busyboxImageName = 'localhost/kata-ts/busybox:latest';

function blob(dir: string, data: Buffer): { digest: string; size: number } {
  const hex = createHash('sha256').update(data).digest('hex');
  writeFileSync(join(dir, 'blobs', 'sha256', hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

/** Writes the image archive to `out` (once; later calls reuse it) and returns its path. */
export function buildBusyboxImage(out: string, busybox = '/bin/busybox'): string {
  if (existsSync(out)) return out;
  if (!existsSync(busybox)) throw new Error(`busybox image: ${busybox} not found (apt-get install busybox-static)`);
  const work = mkdtempSync(join(tmpdir(), 'kata-ts-image-'));
  try {
    const rootfs = join(work, 'rootfs');
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'var', 'run']) {
      mkdirSync(join(rootfs, d), { recursive: true });
    }
    copyFileSync(busybox, join(rootfs, 'bin', 'busybox'));
    chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
    const applets = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const a of applets) {
      const p = join(rootfs, a);
      if (a === 'bin/busybox' || existsSync(p)) continue;
      const depth = a.split('/').length - 1;
      symlinkSync(`${'../'.repeat(depth)}bin/busybox`, p);
    }
    chmodSync(join(rootfs, 'tmp'), 0o1777);
    writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
    writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    const layout = join(work, 'layout');
    mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
    const layerTar = join(work, 'layer.tar');
    execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', rootfs, '-cf', layerTar, '.']);
    const layerData = readFileSync(layerTar);
    const layer = blob(layout, layerData);
    const config = blob(layout, Buffer.from(JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
    })));
    const manifest = blob(layout, Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
    })));
    writeFileSync(join(layout, 'index.json'), JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        ...manifest,
        platform: { architecture: 'amd64', os: 'linux' },
        annotations: { 'io.containerd.image.name': busyboxImageName, 'org.opencontainers.image.ref.name': 'latest' },
      }],
    }));
    writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    mkdirSync(join(out, '..'), { recursive: true });
    const tmpOut = `${out}.${process.pid}.tmp`;
    execFileSync('tar', ['-C', layout, '-cf', tmpOut, 'oci-layout', 'index.json', 'blobs']);
    renameSync(tmpOut, out);
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && process.argv[1].endsWith('busybox.ts') && process.argv[2]) {
  console.log(buildBusyboxImage(process.argv[2]));
}
