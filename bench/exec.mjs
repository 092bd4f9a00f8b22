// Part `exec`: `ctr task exec ... true` latency into a running container, kata-ts vs runc, and
// the kata-ts shim's own CPU per exec (its share; the simulated guest's CPU is shown apart).
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CpuSampler, KATA, RUNC, cpuByKind, cpuMs, envInt, kataKinds, latencyRows, loadHarness, median, ms, now, shimPid, startContainerd, stopContainerd,
} from './lib.mjs';

const WARMUP = 3;

async function exec(c, id, n) {
  const t0 = now();
  const r = await c.ctr(['task', 'exec', '--exec-id', `x${n}`, id, 'true']);
  const t = ms(t0);
  if (r.code !== 0) throw new Error(`ctr task exec ${id} failed (${r.code}): ${r.stderr.trim()}`);
  return t;
}

export async function run(ctx) {
  const N = envInt('BENCH_N', 30);
  const h = await loadHarness(ctx);
  const c = await startContainerd(ctx, '1.6');
  const kid = `bx-kata-${process.pid}`;
  const rid = `bx-runc-${process.pid}`;
  const rows = [];
  try {
    for (const [id, runtime] of [[kid, KATA], [rid, RUNC]]) {
      const r = await c.ctr(['run', '-d', '--runtime', runtime, h.image, id, 'sleep', '600']);
      if (r.code !== 0) throw new Error(`ctr run -d ${id}: ${r.stderr.trim()}`);
    }
    const shim = shimPid(c, KATA, kid);
    for (let i = 0; i < WARMUP; i++) {
      await exec(c, kid, `w${i}`);
      await exec(c, rid, `w${i}`);
    }
    await sleep(500);
    const kata = [];
    const runc = [];
    let shimCpu = 0;
    // The shim's CPU is read around each kata exec only, so runc's execs do not count in it.
    const kinds = kataKinds(c).filter((k) => k.name !== 'shim');
    const longBefore = cpuByKind(kinds); // the pod's VMM, agent, virtiofsd
    const sampler = new CpuSampler(kinds, 50); // processes each exec starts (runc in the guest)
    for (let i = 0; i < N; i++) {
      const before = cpuMs(shim);
      kata.push(await exec(c, kid, i));
      shimCpu += cpuMs(shim) - before;
      runc.push(await exec(c, rid, i));
    }
    const fresh = sampler.stop();
    const longAfter = cpuByKind(kinds);
    rows.push(...latencyRows(`exec true (N=${N})`, kata, runc));
    rows.push({ name: 'kata-ts exec latency over runc (median diff)', value: median(kata) - median(runc), unit: 'ms', note: 'shim + simulated guest' });
    rows.push({ name: 'kata-ts shim CPU per exec', value: shimCpu / N, unit: 'ms', note: 'shim share; target ≤ 10 ms (10 ms clock-tick resolution, summed)' });
    for (const k of kinds) {
      const v = longAfter[k.name] - longBefore[k.name] + fresh[k.name].ms;
      rows.push({ name: `CPU per exec: ${k.name}`, value: v / N, unit: 'ms', note: 'simulators apart from the shim; short-lived processes sampled every 50 ms (lower bound)' });
    }
  } finally {
    const left = await stopContainerd(ctx, c, [kid, rid]);
    rows.push({ name: 'leftover processes/mounts', value: left, unit: '' });
  }
  return rows;
}
