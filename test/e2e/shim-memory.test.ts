// The shim daemon's memory (smaps_rollup) idle with one container and after 20 execs, printed so
// runs can be compared; asserted: the growth per exec stays within the 1.5 MB budget.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, test } from 'vitest';
import { Containerd, image, processesWith, runtimeType, settleLeftovers, uniqueId } from './harness.js';
import { missing, tools } from '../env.js';
import { VERSION_CACHE_DIR, pruneVersionCache } from '../../shim/start.js';

/** KiB figures of /proc/<pid>/smaps_rollup. */
export function memOf(pid: number): { rss: number; pss: number; anon: number; pssFile: number } {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const g = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)?.[1] ?? 0);
  return { rss: g('Rss'), pss: g('Pss'), anon: g('Anonymous'), pssFile: g('Pss_File') };
}

const skip = missing(tools.containerd16, tools.ctr, tools.shim, tools.simCloudHypervisor, tools.simKataAgent, tools.virtiofsd, tools.runc);

describe.skipIf(skip)(`shim daemon memory${skip ? ` (skipped: ${skip})` : ''}`, () => {
  test('idle with one container, then 20 execs: ≤ 1.5 MB per exec', async () => {
    const c = await Containerd.start({ version: '1.6' });
    const id = uniqueId('mem');
    try {
      const r = await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sleep', '600']);
      expect(r.code, r.stderr).toBe(0);
      const shim = processesWith(`-address ${c.address} `).find((p) => p.argv[0].endsWith('containerd-shim-kata-ts-v2') && p.argv.includes(id));
      expect(shim).toBeDefined();
      await sleep(1500);
      const idle = memOf(shim!.pid);
      for (let i = 0; i < 20; i++) expect((await c.ctr(['task', 'exec', '--exec-id', `e${i}`, id, 'true'])).code).toBe(0);
      await sleep(500);
      const after = memOf(shim!.pid);
      console.log(`shim memory KiB idle ${JSON.stringify(idle)} after 20 execs ${JSON.stringify(after)}`);
      expect((after.rss - idle.rss) / 20).toBeLessThanOrEqual(1.5 * 1024);
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    } finally {
      await c.stop();
      pruneVersionCache(VERSION_CACHE_DIR);
    }
    expect(await settleLeftovers([id])).toEqual([]);
  }, 180_000);
});
