// The shipped file stands alone: Node 24 and the shim are inside it. Run from a folder with no
// node_modules anywhere above it and a PATH with no node, it still answers containerd's calls.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { containerd, google } from '../../proto/index.js';
import { tools } from '../env.js';

const isSea = existsSync(tools.shim) && !execFileSync('file', ['-b', tools.shim], { encoding: 'utf8' }).startsWith('POSIX shell');
const skip = !existsSync(tools.shim) ? `not built: ${tools.shim} (npm run build)` : !isSea ? 'dist holds the --dev launcher, not the single executable' : undefined;

describe.skipIf(!!skip)(`the single executable${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  let bin: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(() => {
    // /tmp has no node_modules above it; PATH holds only what a shim may call, and no node.
    dir = mkdtempSync('/tmp/kts-bin-');
    mkdirSync(join(dir, 'bin'));
    bin = join(dir, 'containerd-shim-kata-ts-v2');
    copyFileSync(tools.shim, bin);
    for (const t of ['mount', 'umount', 'sh']) symlinkSync(`/bin/${t}`, join(dir, 'bin', t));
    env = { PATH: join(dir, 'bin'), HOME: dir };
    expect(spawnSync('node', ['-v'], { env }).error).toBeTruthy();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('-v names the version, the commit and the Node inside', () => {
    const out = execFileSync(bin, ['-v'], { env, cwd: dir, encoding: 'utf8' });
    expect(out).toMatch(/Version: \d+\.\d+\.\d+/);
    expect(out).toMatch(/Commit: [0-9a-f]{7,}/);
    expect(out).toMatch(/Node: v24\./);
  });

  test('-h documents the commands and flags', () => {
    const out = execFileSync(bin, ['-h'], { env, cwd: dir, encoding: 'utf8' });
    for (const w of ['start', 'delete', '-namespace', '-address', '-id', '-bundle', '-debug', '-info', '-version']) expect(out).toContain(w);
  });

  test('-info answers a RuntimeInfo for the runtime options on stdin', () => {
    const opts = google.protobuf.Any.encode({ type_url: 'runtimeoptions.v1.Options', value: new Uint8Array() }).finish();
    const out = execFileSync(bin, ['-info'], { env, cwd: dir, input: opts });
    const info = containerd.types.RuntimeInfo.decode(out);
    expect(info.name).toBe('io.containerd.kata-ts.v2');
  });

  test('delete of an id that never ran prints a DeleteResponse with 137', () => {
    const out = execFileSync(bin, ['-namespace', 'ns', '-address', join(dir, 'none.sock'), '-publish-binary', '/bin/true',
      '-id', `nothing-${process.pid}`, '-bundle', join(dir, 'nothing'), 'delete'], { env, cwd: dir });
    const r = containerd.task.v2.DeleteResponse.decode(out);
    expect(r.exitStatus).toBe(137);
    expect(Number(r.exitedAt?.seconds ?? 0)).toBeGreaterThan(0);
  });
});
