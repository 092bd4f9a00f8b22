// Part `density`: 20 pods (standalone containers) started at once with `ctr run -d`: p50/p99
// start latency and the total RSS/PSS of their shims, kata-ts vs runc.
import { setTimeout as sleep } from 'node:timers/promises';
import { KATA, RUNC, envInt, kataKinds, loadHarness, memOf, ms, now, pidsOfKinds, quantile, shimPid, startContainerd, stopContainerd } from './lib.mjs';

async function startOne(c, image, runtime, id) {
  const t0 = now();
  const r = await c.ctr(['run', '-d', '--runtime', runtime, image, id, 'sleep', '600'], { timeoutMs: 180_000 });
  const t = ms(t0);
  if (r.code !== 0) throw new Error(`ctr run -d --runtime ${runtime} ${id} failed: ${r.stderr.trim()}`);
  return t;
}

async function removeAll(c, ids) {
  await Promise.all(ids.map(async (id) => {
    await c.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
    for (let i = 0; i < 100; i++) {
      if ((await c.ctr(['tasks', 'rm', id])).code === 0) break;
      await sleep(100);
    }
    await c.ctr(['containers', 'rm', id]);
  }));
}

export async function run(ctx) {
  const PODS = envInt('BENCH_PODS', 20);
  const h = await loadHarness(ctx);
  const c = await startContainerd(ctx, '1.6');
  const all = [];
  const rows = [];
  try {
    for (const [name, runtime] of [['kata-ts', KATA], ['runc', RUNC]]) {
      const ids = Array.from({ length: PODS }, (_, i) => `bd-${name}-${process.pid}-${i}`);
      all.push(...ids);
      ctx.log(`density: starting ${PODS} ${name} pods at once`);
      const t0 = now();
      const lat = await Promise.all(ids.map((id) => startOne(c, h.image, runtime, id)));
      const wall = ms(t0);
      await sleep(1000);
      const mems = ids.map((id) => memOf(shimPid(c, runtime, id)));
      const sum = (k) => mems.reduce((a, m) => a + m[k], 0) / 1024;
      rows.push({ name: `${name} ${PODS} pods start p50`, value: quantile(lat, 0.5), unit: 'ms' });
      rows.push({ name: `${name} ${PODS} pods start p99`, value: quantile(lat, 0.99), unit: 'ms', note: `all up after ${Math.round(wall)} ms` });
      rows.push({ name: `${name} ${PODS} pods total shim RSS`, value: sum('rssKiB'), unit: 'MiB' });
      rows.push({ name: `${name} ${PODS} pods total shim PSS`, value: sum('pssKiB'), unit: 'MiB' });
      if (runtime === KATA) {
        // What the simulated VMs cost next to the shims (not part of the shim's figures).
        let simRss = 0;
        for (const pid of pidsOfKinds(kataKinds(c).filter((x) => x.name !== 'shim'))) {
          try {
            simRss += memOf(pid).rssKiB / 1024;
          } catch { /* gone meanwhile */ }
        }
        rows.push({ name: `${name} ${PODS} pods simulators+virtiofsd RSS`, value: simRss, unit: 'MiB', note: 'simulated VMM + agent + virtiofsd, shown apart' });
      }
      await removeAll(c, ids);
    }
    const get = (n) => rows.find((r) => r.name === n)?.value;
    rows.push({ name: `start p50 ratio kata-ts/runc`, value: get(`kata-ts ${PODS} pods start p50`) / get(`runc ${PODS} pods start p50`), unit: 'x' });
    rows.push({ name: `total shim RSS ratio kata-ts/runc`, value: get(`kata-ts ${PODS} pods total shim RSS`) / get(`runc ${PODS} pods total shim RSS`), unit: 'x' });
  } finally {
    const left = await stopContainerd(ctx, c, all);
    rows.push({ name: 'leftover processes/mounts', value: left, unit: '' });
  }
  return rows;
}
