// Part `ttrpc`: unary round trips/s and payload MB/s, ttrpc-ts client+server vs Go ttrpc client+server
// (Debian's 1.1 and trixie's 1.2), each pair as two processes on one Unix socket, same machine, same run.
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildPeer, goMissing, startGoServer } from '../test/interop/ttrpc/go-peer.mjs';

const SIZES = [64, 64 << 10];
const CONCURRENCY = [1, 16];
const WARMUP = 0.25; // seconds of calls before measuring, both implementations

const sizeLabel = (n) => (n >= 1024 ? `${n >> 10}KiB` : `${n}B`);

function startTsServer(bundle, socket) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [bundle, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    proc.once('exit', (c) => reject(new Error(`ttrpc-ts bench server exited (${c})`)));
    proc.stdout.once('data', () => {
      proc.removeAllListeners('exit');
      const exited = new Promise((r) => proc.once('exit', r));
      resolve({ stop: async () => (proc.kill('SIGTERM'), await exited) });
    });
  });
}

async function measure(cmd, args) {
  const { stdout } = await promisify(execFile)(cmd, args, { timeout: 120_000 });
  const { calls, seconds } = JSON.parse(stdout);
  return calls / seconds;
}

export async function run(ctx) {
  const rows = [];
  const serverBundle = await ctx.bundle(join(ctx.repoRoot, 'bench', 'ttrpc.server.ts'), 'ttrpc-server');
  const clientBundle = await ctx.bundle(join(ctx.repoRoot, 'bench', 'ttrpc.client.ts'), 'ttrpc-client');
  const impls = [{ name: 'ts', start: (s) => startTsServer(serverBundle, s), client: (s, c, n) => [process.execPath, [clientBundle, s, String(c), String(n), String(ctx.seconds), String(WARMUP)]] }];
  for (const v of ['1.1', '1.2']) {
    const why = goMissing(v);
    if (why) {
      ctx.log(`skipping Go ttrpc ${v}: ${why}`);
      continue;
    }
    const bin = await buildPeer(v);
    impls.push({ name: `go${v}`, start: (s) => startGoServer(bin, s), client: (s, c, n) => [bin, ['-mode', 'bench', '-socket', s, '-concurrency', String(c), '-size', String(n), '-duration', `${ctx.seconds}s`, '-warmup', `${WARMUP}s`]] });
  }
  // All servers up at once; each scenario runs every implementation in turn, `rounds` times,
  // so that load from other work on the machine hits all of them alike. Median is reported.
  const servers = [];
  const rate = {};
  try {
    for (const impl of impls) {
      impl.socket = join(ctx.tmp, `${impl.name}.sock`);
      servers.push(await impl.start(impl.socket));
    }
    for (const size of SIZES) {
      for (const conc of CONCURRENCY) {
        const runs = Object.fromEntries(impls.map((i) => [i.name, []]));
        for (let round = 0; round < ctx.rounds; round++) {
          for (const impl of impls) {
            const [cmd, args] = impl.client(impl.socket, conc, size);
            runs[impl.name].push(await measure(cmd, args));
          }
        }
        for (const impl of impls) {
          const all = runs[impl.name].sort((a, b) => a - b);
          const rps = all[Math.floor(all.length / 2)];
          rate[`${impl.name}/${size}/${conc}`] = rps;
          const label = `${impl.name} ${sizeLabel(size)} x${conc}`;
          const spread = `median of ${all.length} (${Math.round(all[0])}..${Math.round(all[all.length - 1])})`;
          ctx.log(`${label}: ${Math.round(rps)} rt/s, ${spread}`);
          rows.push({ name: `${label} round trips`, value: rps, unit: 'rt/s', note: spread });
          if (size >= 1024) rows.push({ name: `${label} payload`, value: (rps * size * 2) / 1e6, unit: 'MB/s', note: 'request + response' });
        }
      }
    }
  } finally {
    for (const s of servers) await s.stop();
  }
  for (const impl of impls.filter((i) => i.name !== 'ts')) {
    for (const size of SIZES) {
      for (const conc of CONCURRENCY) {
        const ts = rate[`ts/${size}/${conc}`];
        const go = rate[`${impl.name}/${size}/${conc}`];
        rows.push({ name: `ratio ts/${impl.name} ${sizeLabel(size)} x${conc}`, value: ts / go, unit: 'x', note: 'target ≥ 0.8' });
      }
    }
  }
  return rows;
}
