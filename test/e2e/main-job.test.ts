// The README's main job as built (dist/main-job.cjs): it prints the container's output and exits 0;
// with --keep its containerd stays up for `ctr` by hand until SIGINT, then everything is gone.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { processesWith } from './harness.js';
import { distDir, missing, tools } from '../env.js';

const mainJob = join(distDir, 'main-job.cjs');
const skip = !existsSync(mainJob) ? `not built: ${mainJob} (npm run build)`
  : missing(tools.containerd16, tools.ctr, tools.shim, tools.simCloudHypervisor, tools.simKataAgent, tools.virtiofsd, tools.runc);

function runJob(args: string[]) {
  const p = spawn(process.execPath, [mainJob, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => (stdout += d));
  p.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
  return { p, out: () => stdout, err: () => stderr, exited };
}

describe.skipIf(!!skip)(`the main job${skip ? ` (skipped: ${skip})` : ''}`, () => {
  test('prints the container\'s output and exits 0; --keep serves ctr until SIGINT, then leaves nothing', async () => {
    const once = runJob([]);
    expect(await once.exited, once.err()).toBe(0);
    expect(once.out()).toBe('hello from a kata-ts VM\n');

    const kept = runJob(['--keep']);
    let address: string | undefined;
    try {
      const deadline = Date.now() + 60_000;
      while (!kept.err().includes('Ctrl-C stops containerd') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(kept.err()).toContain('containerd keeps running (--keep)');
      address = /ctr --address (\S+) --namespace/.exec(kept.err())?.[1];
      expect(address).toBeDefined();
      // The printed command works as printed (one more run in a VM on the kept containerd).
      const line = kept.err().split('\n').find((l) => l.includes('--address') && l.includes(' run --rm '))!.replace(/^kata-ts:\s+/, '');
      const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const c = spawn('sh', ['-c', line], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.on('exit', (code) => resolve({ code, out }));
      });
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^Linux /);
    } finally {
      kept.p.kill('SIGINT');
    }
    expect(await kept.exited, kept.err()).toBe(0);
    expect(processesWith(address!)).toEqual([]);
    const dir = /containerd's log, (\S+)\/containerd\.log/.exec(kept.err())?.[1];
    expect(dir && existsSync(dir)).toBe(false);
    for (const p of ['/run/vc/vm/t1', '/run/kata-containers/shared/sandboxes/t1']) expect(existsSync(p), p).toBe(false);
  }, 180_000);
});
