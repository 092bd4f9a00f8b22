// Part `stdio`: MB/s of a container's stdout to a consumer (ctr run without -t, its stdout
// counted here), and of stdin the other way (`ctr run ... wc -c`: ctr 1.6 always attaches stdin), kata-ts vs runc. Timed from
// the first byte (stdout) or the container's "ready" line (stdin) to the end, so container start
// is not part of the figure.
import { spawn } from 'node:child_process';
import { CpuSampler, KATA, RUNC, envInt, kataKinds, loadHarness, median, ms, now, startContainerd, stopContainerd } from './lib.mjs';

function ctrSpawn(c, args) {
  return spawn('/usr/bin/ctr', ['--address', c.address, '--namespace', c.namespace, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
}

function exited(p, what) {
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${what} exited ${code}: ${err.trim()}`)))));
}

/** Container writes `bytes` to stdout; returns MB/s from its first byte to EOF. */
async function stdout(c, image, runtime, id, bytes) {
  const p = ctrSpawn(c, ['run', '--rm', '--runtime', runtime, image, id, 'head', '-c', String(bytes), '/dev/zero']);
  p.stdin.end();
  const done = exited(p, `ctr run ${id}`);
  let got = 0;
  let t0;
  let t;
  p.stdout.on('data', (d) => {
    if (!got) t0 = now();
    got += d.length;
    if (got >= bytes) t = ms(t0);
  });
  await Promise.all([done, new Promise((r) => p.stdout.once('end', r))]);
  return { rate: bytes / 1e6 / ((t ?? ms(t0)) / 1000), lost: bytes - got };
}

/** We write `bytes` to the container's stdin (wc -c); returns MB/s from its ready line to its count. */
async function stdin(c, image, runtime, id, bytes) {
  const p = ctrSpawn(c, ['run', '--rm', '--runtime', runtime, image, id, 'sh', '-c', 'echo ready; wc -c']);
  const done = exited(p, `ctr run ${id}`);
  let out = '';
  let t0;
  let took;
  const counted = new Promise((resolve) => p.stdout.on('data', (d) => {
    out += d;
    if (!t0 && out.startsWith('ready\n')) {
      t0 = now();
      void feed();
    }
    if (/ready\n\s*\d+\s*\n/.test(out)) {
      took = ms(t0);
      resolve();
    }
  }));
  const chunk = Buffer.alloc(1 << 20);
  async function feed() {
    for (let left = bytes; left > 0; left -= chunk.length) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      if (!p.stdin.write(piece)) await new Promise((r) => p.stdin.once('drain', r));
    }
    p.stdin.end();
  }
  await Promise.all([done, counted]);
  const n = Number(/ready\n\s*(\d+)/.exec(out)?.[1]);
  // A short count is reported (not thrown): it is a finding about the runtime, not a bench failure.
  return { rate: bytes / 1e6 / (took / 1000), lost: bytes - n };
}

export async function run(ctx) {
  // 1 GiB through the simulated guest takes minutes on a shared 2-core machine: 256 MiB by default.
  const MB = envInt('BENCH_STDIO_MB', 256);
  const ROUNDS = envInt('BENCH_STDIO_ROUNDS', 3);
  const bytes = MB * 1024 * 1024;
  const h = await loadHarness(ctx);
  const c = await startContainerd(ctx, '1.6');
  const ids = [];
  const rows = [];
  try {
    for (const [dir, fn] of [['stdout', stdout], ['stdin', stdin]]) {
      const rate = { kata: [], runc: [] };
      const lost = { kata: 0, runc: 0 };
      const cpu = {};
      for (let i = 0; i < ROUNDS; i++) {
        for (const [name, runtime] of [['kata', KATA], ['runc', RUNC]]) {
          const id = `bs-${dir}-${name}-${process.pid}-${i}`;
          ids.push(id);
          const sampler = name === 'kata' ? new CpuSampler(kataKinds(c)) : undefined;
          const r = await fn(c, h.image, runtime, id, bytes);
          for (const [kind, v] of Object.entries(sampler?.stop() ?? {})) cpu[kind] = (cpu[kind] ?? 0) + v.ms;
          rate[name].push(r.rate);
          lost[name] += r.lost;
          ctx.log(`stdio ${dir} ${name}: ${r.rate.toFixed(1)} MB/s${r.lost ? `, ${r.lost} bytes lost` : ''}`);
        }
      }
      const k = median(rate.kata);
      const r = median(rate.runc);
      const note = `${MB} MiB, median of ${ROUNDS} (BENCH_STDIO_MB, BENCH_STDIO_ROUNDS)`;
      rows.push({ name: `${dir} kata-ts`, value: k, unit: 'MB/s', note });
      rows.push({ name: `${dir} runc`, value: r, unit: 'MB/s', note });
      rows.push({ name: `${dir} ratio kata-ts/runc`, value: k / r, unit: 'x', note: 'target ≥ 0.5' });
      // Where a kata-ts byte's CPU goes: the shim vs the simulated VMM (vsock proxy) and agent.
      for (const [kind, total] of Object.entries(cpu)) {
        if (total > 0) rows.push({ name: `${dir} kata-ts CPU per MiB: ${kind}`, value: total / ROUNDS / MB, unit: 'ms', note: 'whole run incl. start/stop; sampled every 100 ms' });
      }
      for (const name of ['kata', 'runc']) {
        if (lost[name]) rows.push({ name: `${dir} ${name === 'kata' ? 'kata-ts' : 'runc'} bytes lost`, value: lost[name], unit: 'B', note: `over ${ROUNDS} runs of ${bytes} B: DATA LOSS` });
      }
    }
  } finally {
    const left = await stopContainerd(ctx, c, ids);
    rows.push({ name: 'leftover processes/mounts', value: left, unit: '' });
  }
  return rows;
}
