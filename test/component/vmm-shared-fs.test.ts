// SharedFs with real mount(8): the Kata layout, propagation into the read-only shared/ view,
// bind/overlay/bundle rootfs, and cleanup on every path.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathsUnder, type Logger, type Paths } from '../../config/index.js';
import { createSharedFs, VmmError } from '../../vmm/index.js';
import { mountsUnder } from '../../vmm/shared-fs.js';

const skip = process.getuid?.() !== 0 ? 'needs root (mount)' : undefined;
if (skip) console.warn(`skipping shared-fs tests: ${skip}`);
const log: Logger = { debug() {}, info() {}, warn() {}, error() {} };

describe.skipIf(skip)('SharedFs', () => {
  let root: string;
  let paths: Paths;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'kata-ts-sfs-'));
    paths = pathsUnder(root);
  });
  afterAll(() => {
    // A failed test may leave mounts: take them down (deepest first) before judging.
    const left = mountsUnder(root);
    for (const m of left) spawnSync('umount', ['-l', m]);
    rmSync(root, { recursive: true, force: true });
    expect(left).toEqual([]);
  });

  it('lays out mounts/shared/private, shares bind, overlay and bundle rootfs, and tears down', async () => {
    const sfs = createSharedFs({ sandboxId: 'sb1', paths, log });
    const base = paths.sharedSandboxDir('sb1');
    await sfs.setup();
    expect(sfs.sharedDir).toBe(join(base, 'shared'));
    for (const d of ['mounts', 'shared', 'private']) expect(existsSync(join(base, d))).toBe(true);
    expect(() => writeFileSync(join(base, 'shared', 'x'), '')).toThrow(/EROFS/);

    // bind
    const src = join(root, 'src'); mkdirSync(src); writeFileSync(join(src, 'hello'), 'bind');
    expect(await sfs.shareRootfs('c1', [{ type: 'bind', source: src, options: ['rbind', 'rw'] }], join(root, 'bundle1')))
      .toBe('/run/kata-containers/shared/containers/c1/rootfs');
    expect(readFileSync(join(base, 'shared/c1/rootfs/hello'), 'utf8')).toBe('bind');

    // overlay, as containerd's overlayfs snapshotter passes it
    const [lower, upper, work] = ['lower', 'upper', 'work'].map((d) => { const p = join(root, d); mkdirSync(p); return p; });
    writeFileSync(join(lower, 'bin-sh'), 'lower');
    await sfs.shareRootfs('c2', [{ type: 'overlay', source: 'overlay', options: ['index=off', `workdir=${work}`, `upperdir=${upper}`, `lowerdir=${lower}`] }], join(root, 'bundle2'));
    expect(readFileSync(join(base, 'shared/c2/rootfs/bin-sh'), 'utf8')).toBe('lower');
    writeFileSync(join(base, 'mounts/c2/rootfs/new'), 'upper');
    expect(readFileSync(join(upper, 'new'), 'utf8')).toBe('upper');

    // empty list: bind <bundle>/rootfs
    const bundle = join(root, 'bundle3'); mkdirSync(join(bundle, 'rootfs'), { recursive: true });
    writeFileSync(join(bundle, 'rootfs/etc-hostname'), 'bundle');
    await sfs.shareRootfs('c3', [], bundle);
    expect(readFileSync(join(base, 'shared/c3/rootfs/etc-hostname'), 'utf8')).toBe('bundle');

    await sfs.unshareRootfs('c1');
    expect(existsSync(join(base, 'mounts/c1'))).toBe(false);
    expect(mountsUnder(join(base, 'shared/c1'))).toEqual([]);
    expect(readFileSync(join(src, 'hello'), 'utf8')).toBe('bind'); // the source is untouched

    await sfs.teardown();
    expect(existsSync(base)).toBe(false);
    expect(mountsUnder(root)).toEqual([]);
    expect(readFileSync(join(lower, 'bin-sh'), 'utf8')).toBe('lower');
    await sfs.teardown(); // idempotent
  });

  it('shares bind-mounted host files and directories, read-only ones never writable from shared/; unshare removes them', async () => {
    const sfs = createSharedFs({ sandboxId: 'sb3', paths, log });
    const base = paths.sharedSandboxDir('sb3');
    await sfs.setup();
    const dir = join(root, 'vol'); mkdirSync(dir); writeFileSync(join(dir, 'a'), 'dir');
    const file = join(root, 'hosts'); writeFileSync(file, '127.0.0.1 localhost\n');
    const guestDir = await sfs.shareBindMount('c1', dir, '/data', { readonly: false, recursive: true });
    const guestFile = await sfs.shareBindMount('c1', file, '/etc/hosts', { readonly: true, recursive: false });
    const other = await sfs.shareBindMount('c10', file, '/etc/hosts', { readonly: true, recursive: false });
    expect(guestDir).toMatch(/^\/run\/kata-containers\/shared\/containers\/c1-[0-9a-f]{16}-data$/);
    expect(guestFile).toMatch(/^\/run\/kata-containers\/shared\/containers\/c1-[0-9a-f]{16}-hosts$/);
    const host = (g: string) => join(base, 'shared', g.split('/').pop()!);
    expect(readFileSync(join(host(guestDir), 'a'), 'utf8')).toBe('dir');
    expect(readFileSync(host(guestFile), 'utf8')).toBe('127.0.0.1 localhost\n');
    // what virtiofsd serves is read-only; the read-only bind is read-only where the runtime mounts it too
    expect(() => writeFileSync(host(guestFile), 'x')).toThrow(/EROFS/);
    expect(() => writeFileSync(join(base, 'mounts', guestFile.split('/').pop()!), 'x')).toThrow(/EROFS/);
    writeFileSync(join(base, 'mounts', guestDir.split('/').pop()!, 'b'), 'written');
    expect(readFileSync(join(dir, 'b'), 'utf8')).toBe('written');
    expect(mountsUnder(join(base, 'private'))).toEqual([]);
    await expect(sfs.shareBindMount('c1', join(root, 'nope'), '/x', { readonly: false, recursive: false }))
      .rejects.toMatchObject({ code: 'SHARED_FS', message: expect.stringContaining(`bind mount /x of container c1: source ${join(root, 'nope')}: ENOENT`) });
    // read-only and recursive: what is mounted below the source comes along
    const vol2 = join(root, 'vol2'); mkdirSync(join(vol2, 'sub'), { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', join(vol2, 'sub')]);
    try {
      writeFileSync(join(vol2, 'sub', 'in-submount'), 'sub');
      const g2 = await sfs.shareBindMount('c2', vol2, '/v2', { readonly: true, recursive: true });
      expect(readFileSync(join(host(g2), 'sub', 'in-submount'), 'utf8')).toBe('sub');
      expect(() => writeFileSync(join(base, 'mounts', g2.split('/').pop()!, 'x'), 'x')).toThrow(/EROFS/);
      await sfs.unshareRootfs('c2');
      expect(mountsUnder(join(base, 'mounts'))).not.toContainEqual(expect.stringContaining('c2-'));
    } finally {
      execFileSync('umount', [join(vol2, 'sub')]);
    }
    // c1's binds go with c1, c10's stay
    await sfs.unshareRootfs('c1');
    expect(readdirSync(join(base, 'mounts'))).toEqual([other.split('/').pop()]);
    expect(readFileSync(file, 'utf8')).toBe('127.0.0.1 localhost\n');
    await sfs.teardown();
    expect(existsSync(base)).toBe(false);
  });

  it('rejects bad ids and duplicate shares; a failing mount leaves nothing', async () => {
    const sfs = createSharedFs({ sandboxId: 'sb2', paths, log });
    const base = paths.sharedSandboxDir('sb2');
    await sfs.setup();
    await expect(sfs.shareRootfs('../etc', [], root)).rejects.toMatchObject({ code: 'SHARED_FS', message: 'invalid container id "../etc"' });
    const err = await sfs.shareRootfs('c1', [{ type: 'nosuchfs', source: 'none', options: [] }], root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmmError);
    expect((err as VmmError).message).toMatch(/^mount -t nosuchfs none .*mounts\/c1\/rootfs failed: /);
    expect(existsSync(join(base, 'mounts/c1'))).toBe(false);
    const bundle = join(root, 'b'); mkdirSync(join(bundle, 'rootfs'), { recursive: true });
    await sfs.shareRootfs('c2', [], bundle);
    await expect(sfs.shareRootfs('c2', [], bundle)).rejects.toMatchObject({ message: expect.stringContaining('already shared') });
    await sfs.teardown();
    expect(existsSync(base)).toBe(false);
    expect(() => createSharedFs({ sandboxId: 'a/b', paths, log })).toThrow('invalid sandbox id "a/b"');
  });
});
