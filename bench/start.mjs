// Part `start`: `ctr run --rm <image> <id> true` latency, kata-ts (simulated VMM and guest) vs
// runc's shim, on containerd 1.6; the shim's breakdown from its debug log; the `start` subcommand
// timed on its own; the simulators' CPU apart; and, on containerd 2.x, whether a second container
// of the same pod costs a `start` exec.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CpuSampler, KATA, RUNC, envInt, kataKinds, latencyRows, loadHarness, median, ms, now, quantile, sh, startContainerd, stopContainerd,
} from './lib.mjs';

const WARMUP = 2;

/** Shim log spans: [label, from, to]; each end is a predicate over a parsed log line. */
const msg = (m, extra) => (l) => l.msg === m && (!extra || Object.entries(extra).every(([k, v]) => l.f[k] === v));
const SPANS = [
  ['containerd → shim serving (start exec + daemon boot)', msg('get snapshot mounts'), msg('shim serving')],
  ['serving → Create call', msg('shim serving'), msg('task call', { method: 'Create' })],
  ['sandbox setup (Create → virtiofsd launched)', msg('task call', { method: 'Create' }), msg('started', { process: 'virtiofsd' })],
  ['virtiofsd launched → VMM launched', msg('started', { process: 'virtiofsd' }), msg('started', { process: 'cloud-hypervisor' })],
  ['VMM launch → API ready', msg('started', { process: 'cloud-hypervisor' }), msg('cloud-hypervisor API ready')],
  ['vm.create + vm.boot', msg('cloud-hypervisor API ready'), msg('VM running')],
  ['agent dial', msg('VM running'), msg('agent connected')],
  ['CreateSandbox (agent connected → sandbox ready)', msg('agent connected'), msg('sandbox ready')],
  ['create container (sandbox ready → task created)', msg('sandbox ready'), msg('task created')],
  ['Create call total', msg('task call', { method: 'Create' }), msg('task created')],
  ['Start call → /tasks/start queued', msg('task call', { method: 'Start' }), msg('event queued', { topic: '/tasks/start' })],
  ['exit seen → /tasks/exit sent', msg('process exited'), msg('event sent', { topic: '/tasks/exit' })],
  ['Delete call → task deleted', msg('task call', { method: 'Delete' }), msg('task deleted')],
  ['cleanup (task deleted → sandbox stopped)', msg('task deleted'), msg('sandbox stopped')],
  ['sandbox stopped → shim exiting', msg('sandbox stopped'), msg('shim exiting')],
];
const NOT_DERIVED = 'not derivable from the log: vm.create vs vm.boot apart (one line after both), the guest-side exit time (no guest timestamp), '
  + 'start exec vs daemon boot apart (the start exec does not log; timed directly below)';

function parseLine(line) {
  const t = /^time="([^"]+)"/.exec(line);
  const m = / msg="((?:[^"\\]|\\.)*)"/.exec(line);
  if (!t || !m) return undefined;
  const f = {};
  for (const x of line.slice(m.index + m[0].length).matchAll(/ ([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) f[x[1]] = x[2].startsWith('"') ? JSON.parse(x[2]) : x[2];
  return { t: Date.parse(t[1]), msg: JSON.parse(`"${m[1]}"`), f };
}

/** Per id: span label → ms, from the containerd log (shim lines carry sandbox=<id>; containerd's carry key=<id>). */
function spansFrom(logText, ids) {
  const byId = new Map(ids.map((id) => [id, []]));
  for (const raw of logText.split('\n')) {
    const l = parseLine(raw);
    if (!l) continue;
    const id = l.f.sandbox ?? l.f.key;
    byId.get(id)?.push(l);
  }
  const out = Object.fromEntries(SPANS.map(([label]) => [label, []]));
  for (const lines of byId.values()) {
    for (const [label, from, to] of SPANS) {
      const j = lines.findIndex(to);
      if (j < 0) continue;
      // the last `from` before `to` (containerd logs `get snapshot mounts` twice)
      let i = -1;
      for (let k = j - 1; k >= 0; k--) if (from(lines[k])) { i = k; break; }
      if (i >= 0) out[label].push(lines[j].t - lines[i].t);
    }
  }
  return out;
}

async function ctrRun(c, runtime, id) {
  const t0 = now();
  const r = await c.ctr(['run', '--rm', '--runtime', runtime, c.image ?? 'x', id, 'true']);
  const t = ms(t0);
  if (r.code !== 0) throw new Error(`ctr run --runtime ${runtime} ${id} failed (${r.code}): ${r.stderr.trim()}`);
  return t;
}

/** Times the `start` subcommand as containerd runs it, to the address on stdout; then `delete` cleans what it spawned. */
async function timeStartExec(ctx, c, h, id) {
  const bundle = join(ctx.tmp, 'bundles', id);
  mkdirSync(bundle, { recursive: true });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', process: { args: ['true'], cwd: '/' }, root: { path: 'rootfs' } }));
  const shim = join(ctx.repoRoot, 'dist', 'containerd-shim-kata-ts-v2');
  const flags = ['-namespace', c.namespace, '-address', c.address, '-publish-binary', '/usr/bin/containerd', '-id', id];
  const env = { ...process.env, TTRPC_ADDRESS: c.ttrpcAddress, GRPC_ADDRESS: c.address, NAMESPACE: c.namespace, KATA_CONF_FILE: c.kataConfig };
  const t0 = now();
  const { address, took } = await new Promise((resolve, reject) => {
    const p = spawn(shim, [...flags, 'start'], { cwd: bundle, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n') || /^(unix|ttrpc)/.test(out)) resolve({ address: out.trim(), took: ms(t0) });
    });
    p.stderr.on('data', (d) => (err += d));
    p.once('exit', (code) => (out ? resolve({ address: out.trim(), took: ms(t0) }) : reject(new Error(`start exited ${code}: ${err.trim()}`))));
  });
  const del = await sh(shim, [...flags, '-bundle', bundle, 'delete'], { cwd: bundle, env });
  if (del.code !== 0) ctx.log(`start-exec ${id}: delete failed: ${del.stderr.trim()}`);
  void h;
  return { address, took };
}

export async function run(ctx) {
  const N = envInt('BENCH_N', 30);
  const rows = [];
  const h = await loadHarness(ctx);
  const c = await startContainerd(ctx, '1.6');
  c.image = h.image;
  const ids = [];
  const id = (p) => {
    const x = `b${p}-${process.pid}-${ids.length}`;
    ids.push(x);
    return x;
  };
  let cpu;
  const kata = [];
  const runc = [];
  const startExec = [];
  try {
    for (let i = 0; i < WARMUP; i++) {
      await ctrRun(c, KATA, id('w'));
      await ctrRun(c, RUNC, id('w'));
    }
    const measured = [];
    const sampler = new CpuSampler(kataKinds(c));
    // Interleaved, so load from other work on the machine hits both alike.
    for (let i = 0; i < N; i++) {
      const k = id('k');
      measured.push(k);
      kata.push(await ctrRun(c, KATA, k));
      runc.push(await ctrRun(c, RUNC, id('r')));
    }
    cpu = sampler.stop();
    rows.push(...latencyRows(`ctr run --rm true (N=${N})`, kata, runc));

    const spans = spansFrom(readFileSync(c.logFile, 'utf8'), measured);
    for (const [label, xs] of Object.entries(spans)) {
      rows.push({ name: `kata-ts span: ${label}`, value: xs.length ? median(xs) : NaN, unit: 'ms', note: xs.length ? `median, p90 ${quantile(xs, 0.9)}, n=${xs.length}` : 'no log lines' });
    }
    rows.push({ name: 'kata-ts spans not derived', value: '-', unit: '', note: NOT_DERIVED });
    for (const [kind, v] of Object.entries(cpu)) {
      rows.push({ name: `CPU per run: ${kind}`, value: v.ms / N, unit: 'ms', note: `${v.processes} processes sampled every 100 ms (lower bound)` });
    }

    // `start` alone: the binary as containerd execs it, to the address it prints.
    const startN = Math.min(N, envInt('BENCH_START_N', 10));
    for (let i = 0; i < startN + 1; i++) {
      const r = await timeStartExec(ctx, c, h, id('s'));
      if (i > 0) startExec.push(r.took); // first one warms the page cache
    }
    rows.push({ name: '`start` exec → address median', value: median(startExec), unit: 'ms', note: `p90 ${quantile(startExec, 0.9).toFixed(1)}, n=${startExec.length}; target ≤ 30 ms` });
  } finally {
    const left = await stopContainerd(ctx, c, ids);
    rows.push({ name: 'leftover processes/mounts (1.6 run)', value: left, unit: '' });
  }

  rows.push(...(await podStarts(ctx)));
  return rows;
}

/**
 * containerd 2.x: a pod (sandbox container + a second container naming it) through ctr with the
 * CRI annotations; counts `start` execs of the shim via a PATH wrapper that records its argv.
 */
async function podStarts(ctx) {
  const wrapDir = join(ctx.tmp, 'wrap');
  const record = join(ctx.tmp, 'shim-invocations.log');
  mkdirSync(wrapDir, { recursive: true });
  const real = join(ctx.repoRoot, 'dist', 'containerd-shim-kata-ts-v2');
  writeFileSync(join(wrapDir, 'containerd-shim-kata-ts-v2'), `#!/bin/sh\necho "$*" >> ${record}\nexec ${real} "$@"\n`);
  chmodSync(join(wrapDir, 'containerd-shim-kata-ts-v2'), 0o755);
  writeFileSync(record, '');
  const h = await loadHarness(ctx);
  const c = await startContainerd(ctx, '2', { PATH: `${wrapDir}:${join(ctx.repoRoot, 'dist')}:${process.env.PATH}` });
  const pod = `bpod-${process.pid}`;
  const second = `bpod2-${process.pid}`;
  const rows = [];
  const starts = () => readFileSync(record, 'utf8').split('\n').filter((l) => / start$/.test(l));
  try {
    const a = (type) => ['--annotation', `io.kubernetes.cri.container-type=${type}`, '--annotation', `io.kubernetes.cri.sandbox-id=${pod}`];
    const r1 = await c.ctr(['run', '-d', '--runtime', KATA, ...a('sandbox'), h.image, pod, 'sleep', '300']);
    if (r1.code !== 0) throw new Error(`pod sandbox: ${r1.stderr.trim()}`);
    const afterFirst = starts().length;
    const t0 = now();
    const r2 = await c.ctr(['run', '--rm', '--runtime', KATA, ...a('container'), h.image, second, 'true']);
    const t2 = ms(t0);
    if (r2.code !== 0) throw new Error(`second container: ${r2.stderr.trim()}`);
    const extra = starts().length - afterFirst;
    rows.push({ name: 'containerd 2.x: `start` execs for the pod sandbox', value: afterFirst, unit: '' });
    rows.push({ name: 'containerd 2.x: `start` execs for a 2nd container in the pod', value: extra, unit: '', note: extra === 0 ? 'avoided' : 'not avoided: containerd execs `start`, the shim answers the sandbox address' });
    rows.push({ name: 'containerd 2.x: 2nd container ctr run --rm true', value: t2, unit: 'ms', note: 'same VM, no boot' });
  } finally {
    await stopContainerd(ctx, c, [pod, second]);
  }
  return rows;
}
