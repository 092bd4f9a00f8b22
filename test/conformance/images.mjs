// Builds the images containerd's integration/client suite pulls, as OCI image layouts, from
// Debian packages: no public registry is reachable here. Each layout is a stand-in with the
// shape the tests rely on (platforms, layer count, users, applets), not a copy of the original.
//
//   node images.mjs <busybox (Debian's dynamic build)> <out dir>
// writes <out dir>/<repo>/<tag>/{oci-layout,index.json,blobs/sha256/*} and prints the list.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER_GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER_GZ = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

// The users and groups of the upstream busybox image: tests run as www-data (33) and sys (3).
const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`;
const GROUP = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`;

// Debian builds busybox without NC_110_COMPAT, whose nc installs no SIGTERM handler: as pid 1
// it then ignores SIGTERM and TestBindLowPortNonOpt waits forever. Upstream's image (busybox
// defconfig) exits on SIGTERM; this wrapper gives Debian's nc that behaviour.
const NC_WRAPPER = `#!/bin/sh
trap 'kill -TERM "$pid" 2>/dev/null; exit 143' TERM INT
/bin/busybox nc "$@" <&0 &
pid=$!
wait "$pid"
`;

/** A layout writer: blobs go in as they are made; index.json is written last. */
class Layout {
  constructor(dir) {
    this.dir = dir;
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  }
  blob(data, mediaType, extra = {}) {
    const digest = sha256(data);
    writeFileSync(join(this.dir, 'blobs', 'sha256', digest.slice(7)), data);
    return { mediaType, digest, size: data.length, ...extra };
  }
  json(obj, mediaType, extra) {
    return this.blob(Buffer.from(JSON.stringify(obj)), mediaType, extra);
  }
  finish(top, ref) {
    writeFileSync(join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(join(this.dir, 'index.json'), JSON.stringify({
      schemaVersion: 2,
      manifests: [{ ...top, annotations: { 'org.opencontainers.image.ref.name': ref } }],
    }));
  }
}

/** Tars a folder reproducibly; returns { tar, gz } buffers. */
function tarDir(dir) {
  const tar = execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', dir, '-cf', '-', '.'], { maxBuffer: 1 << 28 });
  return { tar, gz: gzipSync(tar, { level: 6 }) };
}

/** One image manifest (OCI or Docker media types) over the given layer folders. */
function manifestOf(layout, layerDirs, platform, o = {}) {
  const docker = o.docker === true;
  const layers = layerDirs.map((d) => {
    const { tar, gz } = tarDir(d);
    return { desc: layout.blob(gz, docker ? DOCKER_LAYER_GZ : OCI_LAYER_GZ), diffId: sha256(tar) };
  });
  const config = layout.json({
    architecture: platform.architecture,
    os: platform.os,
    ...(platform['os.version'] ? { 'os.version': platform['os.version'] } : {}),
    ...(platform.variant ? { variant: platform.variant } : {}),
    created: '2021-01-01T00:00:00Z',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      ...(o.entrypoint ? { Entrypoint: o.entrypoint } : {}),
      Cmd: o.cmd ?? ['sh'],
      WorkingDir: '/',
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: '2021-01-01T00:00:00Z', created_by: 'kata-ts test/conformance/images.mjs' })),
  }, docker ? DOCKER_CONFIG : OCI_CONFIG);
  return layout.json({
    schemaVersion: 2,
    mediaType: docker ? DOCKER_MANIFEST : OCI_MANIFEST,
    config,
    layers: layers.map((l) => l.desc),
  }, docker ? DOCKER_MANIFEST : OCI_MANIFEST, { platform });
}

function indexOf(layout, manifests) {
  return layout.json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }, OCI_INDEX);
}

/** A root filesystem with Debian's dynamic busybox, its libraries (from ldd) and applet links. */
function busyboxRootfs(dir, busybox) {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'home', 'var/www', 'var/spool/mail', 'run']) {
    mkdirSync(join(dir, d), { recursive: true });
  }
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  const ldd = execFileSync('ldd', [busybox], { encoding: 'utf8' });
  for (const m of ldd.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) {
    const lib = m[1];
    mkdirSync(join(dir, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(dir, lib)); // follows symlinks: the real file lands under the name the loader asks for
  }
  const applets = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) {
    const p = join(dir, a);
    if (a === 'bin/busybox' || existsSync(p)) continue;
    mkdirSync(dirname(p), { recursive: true });
    symlinkSync(`${'../'.repeat(a.split('/').length - 1)}bin/busybox`, p);
  }
  // Replace the nc link wherever this busybox puts it (Debian: usr/bin/nc, first on PATH).
  for (const a of applets.filter((x) => x.endsWith('/nc'))) {
    rmSync(join(dir, a), { force: true });
    writeFileSync(join(dir, a), NC_WRAPPER, { mode: 0o755 });
  }
  chmodSync(join(dir, 'tmp'), 0o1777);
  writeFileSync(join(dir, 'etc', 'passwd'), PASSWD);
  writeFileSync(join(dir, 'etc', 'group'), GROUP);
}

/** A folder holding one small file: the layer of a platform nobody runs here. */
function markerLayer(dir, name, text) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), text);
  return dir;
}

export function buildImages(busybox, out) {
  if (!existsSync(busybox)) throw new Error(`images: busybox ${busybox} not found (Debian's dynamic 'busybox' package, unpacked)`);
  const work = mkdtempSync(join(tmpdir(), 'kata-ts-conformance-img-'));
  const built = [];
  const image = (repo, tag, make) => {
    const layout = new Layout(join(out, repo, tag));
    layout.finish(make(layout), tag);
    built.push(`${repo}:${tag}`);
  };
  try {
    const bb = join(work, 'busybox');
    busyboxRootfs(bb, busybox);
    const amd64 = { architecture: 'amd64', os: 'linux' };
    const other = (p) => markerLayer(join(work, `marker-${p.os}-${p.architecture}${p.variant ?? ''}`), 'platform', `${p.os}/${p.architecture}${p.variant ? '/' + p.variant : ''}\n`);

    // The seed image of every container test.
    image('containerd/busybox', '1.32', (l) => indexOf(l, [manifestOf(l, [bb], amd64)]));

    // Three layers, for export/import of a multi-layer image.
    const v1 = markerLayer(join(work, 'vcu1', 'test_dir'), 'file1', 'layer 1\n');
    const v2 = markerLayer(join(work, 'vcu2', 'test_dir'), 'file2', 'layer 2\n');
    image('containerd/volume-copy-up', '2.1', (l) => indexOf(l, [manifestOf(l, [bb, dirname(v1), dirname(v2)], amd64)]));

    // The user-namespace tests only need a shell that can `exit 7`: busybox with alpine's marker.
    const alp = join(work, 'alpine');
    busyboxRootfs(alp, busybox);
    writeFileSync(join(alp, 'etc', 'alpine-release'), '3.14.0\n');
    image('containerd/alpine', '3.14.0', (l) => indexOf(l, [manifestOf(l, [alp], amd64)]));

    // pause 3.6: a multi-arch index like the original (linux on five architectures and Windows);
    // the tests fetch and unpack it but never run it.
    const pausePlatforms = [amd64, { architecture: 'arm', os: 'linux', variant: 'v7' }, { architecture: 'arm64', os: 'linux' },
      { architecture: 'ppc64le', os: 'linux' }, { architecture: 's390x', os: 'linux' },
      { architecture: 'amd64', os: 'windows', 'os.version': '10.0.17763.2114' }];
    image('pause', '3.6', (l) => indexOf(l, pausePlatforms.map((p) =>
      manifestOf(l, [p === amd64 ? markerLayer(join(work, 'pause-amd64'), 'pause', 'pause stand-in\n') : other(p)], p, { entrypoint: ['/pause'], cmd: [] }))));

    // e2e busybox 1.29-2: five Linux platforms; a test pulls three of them.
    const e2ePlatforms = [amd64, { architecture: 'arm', os: 'linux', variant: 'v7' }, { architecture: 'arm64', os: 'linux', variant: 'v8' },
      { architecture: 'ppc64le', os: 'linux' }, { architecture: 's390x', os: 'linux' }];
    image('e2e-test-images/busybox', '1.29-2', (l) => indexOf(l, e2ePlatforms.map((p) => manifestOf(l, [p === amd64 ? bb : other(p)], p))));

    // A Windows-only image (Docker schema 2, no index): unpacking it for linux must fail.
    image('windows/nanoserver', '1809', (l) => manifestOf(l, [markerLayer(join(work, 'nanoserver'), 'License.txt', 'stand-in\n')],
      { architecture: 'amd64', os: 'windows', 'os.version': '10.0.17763.2114' }, { docker: true, cmd: ['c:\\windows\\system32\\cmd.exe'] }));
    return built;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('images.mjs')) {
  const [busybox, out] = process.argv.slice(2);
  if (!busybox || !out) {
    console.error('usage: node images.mjs <dynamic busybox> <out dir>');
    process.exit(2);
  }
  for (const name of buildImages(busybox, out)) console.log(name);
}
