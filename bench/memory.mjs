// Part `memory`: RSS and PSS (/proc/<pid>/smaps_rollup) of the shim serving one pod, idle and
// after 100 execs, kata-ts vs runc's shim for the same container; then with 20 pods at once.
import { setTimeout as sleep } from 'node:timers/promises';
import { KATA, RUNC, envInt, loadHarness, memOf, median, shimPid, startContainerd, stopContainerd } from './lib.mjs';

const MiB = (kib) => kib / 1024;
// RSS minus anonymous is file-backed: the executable's pages, shared by every shim. How many of
// them a process maps depends on the page cache: right after a build the whole file is cached and
// each page fault maps its 64 KiB neighbourhood, so RSS reads ~20 MB higher than after
// `echo 1 > /proc/sys/vm/drop_caches` (measured: 91 vs 72 MiB); anonymous and PSS with many
// shims are the stable figures.
const FILE_NOTE = 'RSS - anon = executable pages, shared; RSS depends on the page cache';

async function runDetached(c, image, runtime, id) {
  const r = await c.ctr(['run', '-d', '--runtime', runtime, image, id, 'sleep', '600']);
  if (r.code !== 0) throw new Error(`ctr run -d --runtime ${runtime} ${id} failed: ${r.stderr.trim()}`);
  const pid = shimPid(c, runtime, id);
  if (!pid) throw new Error(`no shim process found for ${id}`);
  return pid;
}

async function execs(c, id, n) {
  for (let i = 0; i < n; i++) {
    const r = await c.ctr(['task', 'exec', '--exec-id', `e${i}`, id, 'true']);
    if (r.code !== 0) throw new Error(`ctr task exec ${id} #${i} failed: ${r.stderr.trim()}`);
  }
}

async function removeTask(c, id) {
  await c.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
  for (let i = 0; i < 50; i++) {
    const r = await c.ctr(['tasks', 'rm', id]);
    if (r.code === 0) break;
    await sleep(100);
  }
  await c.ctr(['containers', 'rm', id]);
}

/** Runs fn over items, at most `limit` at a time. */
async function pool(items, limit, fn) {
  const out = [];
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }));
  return out;
}

export async function run(ctx) {
  const EXECS = envInt('BENCH_EXECS', 100);
  const PODS = envInt('BENCH_PODS', 20);
  const h = await loadHarness(ctx);
  const c = await startContainerd(ctx, '1.6');
  const ids = [];
  const rows = [];
  try {
    const one = {};
    for (const [name, runtime] of [['kata-ts', KATA], ['runc', RUNC]]) {
      const id = `bm-${name}-${process.pid}`;
      ids.push(id);
      const pid = await runDetached(c, h.image, runtime, id);
      await sleep(1000); // let start-up garbage settle
      const idle = memOf(pid);
      await execs(c, id, EXECS);
      await sleep(1000);
      const after = memOf(pid);
      one[name] = { idle, after };
      rows.push({ name: `${name} shim idle RSS`, value: MiB(idle.rssKiB), unit: 'MiB', note: name === 'kata-ts' ? 'target ≤ 38 MB' : '' });
      rows.push({ name: `${name} shim idle PSS`, value: MiB(idle.pssKiB), unit: 'MiB' });
      rows.push({ name: `${name} shim idle anonymous (heap, stacks)`, value: MiB(idle.anonKiB), unit: 'MiB', note: name === 'kata-ts' ? FILE_NOTE : '' });
      rows.push({ name: `${name} shim RSS after ${EXECS} execs`, value: MiB(after.rssKiB), unit: 'MiB' });
      rows.push({ name: `${name} shim PSS after ${EXECS} execs`, value: MiB(after.pssKiB), unit: 'MiB' });
      rows.push({ name: `${name} shim RSS growth per exec`, value: MiB(after.rssKiB - idle.rssKiB) / EXECS, unit: 'MiB', note: name === 'kata-ts' ? 'target ≤ 1.5 MB per extra exec' : '' });
      await removeTask(c, id);
    }
    rows.push({ name: 'idle RSS ratio kata-ts/runc', value: one['kata-ts'].idle.rssKiB / one.runc.idle.rssKiB, unit: 'x' });

    for (const [name, runtime] of [['kata-ts', KATA], ['runc', RUNC]]) {
      const podIds = Array.from({ length: PODS }, (_, i) => `bm${PODS}-${name}-${process.pid}-${i}`);
      ids.push(...podIds);
      ctx.log(`memory: ${PODS} ${name} pods`);
      const pids = await pool(podIds, 4, (id) => runDetached(c, h.image, runtime, id));
      await sleep(2000);
      const mems = pids.map(memOf);
      const pss = mems.map((m) => MiB(m.pssKiB));
      const rss = mems.map((m) => MiB(m.rssKiB));
      rows.push({ name: `${name} ${PODS} pods: PSS per shim (median)`, value: median(pss), unit: 'MiB', note: `${pss.length} shims, max ${Math.max(...pss).toFixed(1)}${name === 'kata-ts' ? '; target ≤ 20 MB' : ''}` });
      rows.push({ name: `${name} ${PODS} pods: RSS per shim (median)`, value: median(rss), unit: 'MiB' });
      rows.push({ name: `${name} ${PODS} pods: anonymous per shim (median)`, value: median(mems.map((m) => MiB(m.anonKiB))), unit: 'MiB' });
      rows.push({ name: `${name} ${PODS} pods: total shim PSS`, value: pss.reduce((a, b) => a + b, 0), unit: 'MiB' });
      await pool(podIds, 4, (id) => removeTask(c, id));
    }
  } finally {
    const left = await stopContainerd(ctx, c, ids);
    rows.push({ name: 'leftover processes/mounts', value: left, unit: '' });
  }
  return rows;
}
