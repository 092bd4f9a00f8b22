// The built shim binary's one-shot actions, as containerd runs them (no containerd needed).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { containerd } from '../../proto/index.js';
import { missing, tools } from '../env.js';

const skip = missing(tools.shim);

describe.skipIf(skip)(`shim binary${skip ? ` (skipped: ${skip})` : ''}`, () => {
  test('-v prints the version, -info a RuntimeInfo', () => {
    expect(execFileSync(tools.shim, ['-v'], { encoding: 'utf8' })).toMatch(/Runtime: io\.containerd\.kata-ts\.v2/);
    const info = containerd.types.RuntimeInfo.decode(execFileSync(tools.shim, ['-info'], { input: '' }));
    expect(info.name).toBe('io.containerd.kata-ts.v2');
  });

  test('an unknown flag fails with Go flag\'s message and status 2', () => {
    const r = spawnSync(tools.shim, ['-bogus', 'start'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('flag provided but not defined: -bogus');
  });

  test('delete without -id is refused by name and prints nothing on stdout', () => {
    const r = spawnSync(tools.shim, ['-namespace', 'ns', '-address', '/tmp/none.sock', 'delete'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('delete needs -id');
  });

  test('delete of an id with nothing left answers DeleteResponse{137} fast, twice', () => {
    const bundle = mkdtempSync(join(tmpdir(), 'kts-del-'));
    try {
      writeFileSync(join(bundle, 'config.json'), '{}');
      for (let i = 0; i < 2; i++) {
        const t0 = Date.now();
        const out = execFileSync(tools.shim, ['-namespace', 'ns', '-address', '/tmp/none.sock', '-publish-binary', '/usr/bin/containerd',
          '-id', 'gone-1', '-bundle', bundle, 'delete'], { cwd: bundle });
        const d = containerd.task.v2.DeleteResponse.decode(out);
        expect(d.exitStatus).toBe(137);
        expect(d.pid).toBe(0);
        expect(Math.abs(Number(d.exitedAt?.seconds) - Date.now() / 1000)).toBeLessThan(30);
        expect(Date.now() - t0).toBeLessThan(5000);
      }
    } finally {
      rmSync(bundle, { recursive: true, force: true });
    }
  });
});
