// Shared pieces of the containerd benchmark parts: the e2e harness (bundled once per run),
// statistics, /proc readings, and the row helpers every part prints.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

export const RUNC = 'io.containerd.runc.v2';
export const KATA = 'io.containerd.kata-ts.v2';

/** Env number with a default; a bad value is an error naming the variable. */
export function envInt(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${raw}: expected a positive integer`);
  return n;
}

let harness;
/**
 * The e2e harness (test/e2e/harness.ts) as an ES module. test/env.ts finds the repo from its own
 * import.meta.url, so the bundle gets that file's URL in place of its own.
 */
export async function loadHarness(ctx) {
  if (harness) return harness;
  const dist = join(ctx.repoRoot, 'dist', 'containerd-shim-kata-ts-v2');
  if (!existsSync(dist)) throw new Error(`${dist} missing: run npm run build first`);
  const outfile = join(ctx.tmp, 'harness.mjs');
  await build({
    entryPoints: [join(ctx.repoRoot, 'test', 'e2e', 'harness.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20',
    outfile, logLevel: 'error', define: { 'import.meta.url': JSON.stringify(pathToFileURL(join(ctx.repoRoot, 'test', 'env.ts')).href) },
  });
  harness = await import(pathToFileURL(outfile).href);
  return harness;
}

/** A private containerd (1.6 unless told) whose simulated guests answer at once. */
export async function startContainerd(ctx, version = '1.6', env = {}) {
  const h = await loadHarness(ctx);
  ctx.log(`starting containerd ${version}`);
  return h.Containerd.start({ version, env: { CH_SIM_BOOT_DELAY_MS: '0', ...env } });
}

/** Stops containerd via the harness, then checks nothing of these ids is left (shims, sims, virtiofsd, mounts). */
export async function stopContainerd(ctx, c, ids) {
  const h = await loadHarness(ctx);
  await c.stop();
  const left = await h.settleLeftovers(ids, 15_000);
  const strays = h.processesWith(` -address ${c.address} `);
  if (left.length || strays.length) ctx.log(`LEFTOVERS after stop: ${[...left, ...strays.map((s) => `${s.pid} ${s.argv.join(' ')}`)].join('; ')}`);
  return left.length + strays.length;
}

export function quantile(xs, q) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
export const median = (xs) => quantile(xs, 0.5);

export const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
export const now = () => process.hrtime.bigint();

/** utime+stime of a process in ms, or undefined when it is gone. */
export function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields 14/15 (utime, stime) are 11/12 after the ')' ; clock ticks are 100/s on Linux here
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

/** { rssKiB, pssKiB, anonKiB } from /proc/<pid>/smaps_rollup (anon: the process's own heap and
 *  stacks; the rest of RSS is file-backed, mostly the executable's pages, shared by every shim). */
export function memOf(pid) {
  const txt = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(txt)?.[1] ?? NaN);
  return { rssKiB: get('Rss'), pssKiB: get('Pss'), anonKiB: get('Anonymous') };
}

function cmdlineOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** The serving shim daemon (not the `start` exec) of a container/pod id under this containerd. */
export function shimPid(c, runtime, id) {
  const bin = runtime === KATA ? 'containerd-shim-kata-ts-v2' : 'containerd-shim-runc-v2';
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const argv = cmdlineOf(pid);
    if (!argv?.[0]?.endsWith(bin)) continue;
    if (argv.includes('start') || argv.includes('delete')) continue;
    const i = argv.indexOf('-id');
    if (argv[i + 1] === id && argv.includes(c.address)) return Number(pid);
  }
  return undefined;
}

/**
 * Samples CPU time of the processes a run starts, by kind, every `everyMs` (the last <everyMs of a
 * process that exits between samples is lost: figures are a lower bound).
 */
export class CpuSampler {
  constructor(kinds, everyMs = 100) {
    this.kinds = kinds; // [{ name, match(argv) }]
    this.seen = new Map(); // pid -> { kind, ms }
    this.skip = new Set(readdirSync('/proc').filter((p) => /^\d+$/.test(p)));
    this.timer = setInterval(() => this.sample(), everyMs);
  }
  sample() {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid) || this.skip.has(pid)) continue;
      let e = this.seen.get(pid);
      if (!e) {
        const argv = cmdlineOf(pid);
        if (!argv?.length) continue;
        const kind = this.kinds.find((k) => k.match(argv, pid));
        if (!kind) {
          this.skip.add(pid);
          continue;
        }
        e = { kind: kind.name, ms: 0 };
        this.seen.set(pid, e);
      }
      const t = cpuMs(pid);
      if (t !== undefined) e.ms = t;
    }
  }
  /** Stops sampling; returns { kind: { ms, processes } }. */
  stop() {
    this.sample();
    clearInterval(this.timer);
    const out = Object.fromEntries(this.kinds.map((k) => [k.name, { ms: 0, processes: 0 }]));
    for (const e of this.seen.values()) {
      out[e.kind].ms += e.ms;
      out[e.kind].processes++;
    }
    return out;
  }
}

/** CPU ms by kind of the processes alive now (for before/after deltas of long-lived ones). */
export function cpuByKind(kinds) {
  const out = Object.fromEntries(kinds.map((k) => [k.name, 0]));
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const argv = cmdlineOf(pid);
    const kind = argv?.length && kinds.find((k) => k.match(argv, pid));
    if (kind) out[kind.name] += cpuMs(pid) ?? 0;
  }
  return out;
}

/** Pids of the processes alive now that match one of these kinds. */
export function pidsOfKinds(kinds) {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((pid) => {
    const argv = cmdlineOf(pid);
    return argv?.length && kinds.some((k) => k.match(argv, pid));
  }).map(Number);
}

function ppidOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/**
 * True when the process descends from a kata-ts shim of this containerd (the VMM, agent,
 * virtiofsd and guest runc all do): other people's simulators on the machine do not count.
 */
function underShimOf(c, pid) {
  for (let p = ppidOf(pid), hops = 0; p > 1 && hops < 20; p = ppidOf(p), hops++) {
    const argv = cmdlineOf(p);
    if (argv?.[0]?.endsWith('containerd-shim-kata-ts-v2') && argv.includes(c.address)) return true;
  }
  return false;
}

/** The kata-ts run's process kinds, for CpuSampler / cpuByKind / pidsOfKinds: match(argv, pid). */
export function kataKinds(c) {
  const mine = (pid) => underShimOf(c, pid);
  return [
    { name: 'shim', match: (a) => a[0]?.endsWith('containerd-shim-kata-ts-v2') && a.includes(c.address) },
    { name: 'sim-cloud-hypervisor', match: (a, pid) => a.some((x) => /sim\/cloud-hypervisor(\.cjs)?$/.test(x)) && mine(pid) },
    { name: 'sim-kata-agent', match: (a, pid) => a.some((x) => /sim\/kata-agent(\.cjs)?$/.test(x)) && mine(pid) },
    { name: 'virtiofsd', match: (a, pid) => a.some((x) => x.endsWith('virtiofsd')) && mine(pid) },
    { name: 'runc-in-guest', match: (a, pid) => a[0]?.endsWith('runc') && mine(pid) },
  ];
}

export const load = () => loadavg().map((x) => Math.round(x * 100) / 100);

/** Runs a command, resolving { code, stdout, stderr } (never rejects). */
export function sh(cmd, args, o = {}) {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 120_000, maxBuffer: 64 << 20, ...o }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) }));
    if (o.input !== undefined) child.stdin.end(o.input);
  });
}

/** ms figure rows: median and p90 of each runtime, and their ratio. */
export function latencyRows(what, kata, runc, extra = {}) {
  const rows = [];
  const spread = (xs) => `n=${xs.length}, min ${Math.round(Math.min(...xs))}, max ${Math.round(Math.max(...xs))}`;
  rows.push({ name: `${what} kata-ts median`, value: median(kata), unit: 'ms', note: spread(kata) });
  rows.push({ name: `${what} kata-ts p90`, value: quantile(kata, 0.9), unit: 'ms' });
  rows.push({ name: `${what} runc median`, value: median(runc), unit: 'ms', note: spread(runc) });
  rows.push({ name: `${what} runc p90`, value: quantile(runc, 0.9), unit: 'ms' });
  rows.push({ name: `${what} ratio kata-ts/runc (median)`, value: median(kata) / median(runc), unit: 'x', ...extra });
  return rows;
}
