#!/usr/bin/env node
// Benchmark runner: `npm run bench` runs every part, `npm run bench -- ttrpc start` some of them.
// A part is bench/<name>.mjs exporting `async run(ctx)` that returns rows
// ({ part, name, value, unit, note? }). Adding a part = adding its name here:
const PARTS = ['ttrpc', 'start', 'memory', 'stdio', 'exec', 'density'];

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(benchDir, '..');

const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = asked.filter((a) => !PARTS.includes(a));
if (unknown.length) {
  console.error(`bench: unknown part(s) ${unknown.join(', ')}; known: ${PARTS.join(', ')}`);
  process.exit(2);
}
const parts = asked.length ? asked : PARTS;

const tmp = mkdtempSync(join(tmpdir(), 'kata-ts-bench-'));
const ctx = {
  repoRoot,
  tmp,
  /** Seconds per measurement (BENCH_SECONDS, default 1). */
  seconds: Number(process.env.BENCH_SECONDS ?? 1),
  /** Repetitions of each measurement, interleaved between implementations (BENCH_ROUNDS, default 3). */
  rounds: Number(process.env.BENCH_ROUNDS ?? 3),
  log: (msg) => process.stderr.write(`bench: ${msg}\n`),
  /** Bundles a TypeScript entry (resolving workspace packages like ttrpc-ts) to an .mjs file; returns its path. */
  async bundle(entry, name) {
    const outfile = join(tmp, `${name ?? 'bundle'}.mjs`);
    await build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'error' });
    return outfile;
  },
};

const loadBefore = loadavg();
const rows = [];
let failed = false;
try {
  for (const part of parts) {
    ctx.log(`running ${part}`);
    try {
      const mod = await import(pathToFileURL(join(benchDir, `${part}.mjs`)).href);
      for (const r of await mod.run(ctx)) rows.push({ part, ...r });
    } catch (err) {
      failed = true;
      ctx.log(`${part} failed: ${err?.stack ?? err}`);
      rows.push({ part, name: 'error', value: NaN, unit: '', note: String(err?.message ?? err) });
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const fmt = (v) => (typeof v === 'number' ? (Number.isInteger(v) || Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2)) : String(v));
const table = rows.map((r) => [r.part, r.name, fmt(r.value), r.unit, r.note ?? '']);
const widths = [0, 1, 2, 3].map((i) => Math.max(...table.map((t) => t[i].length), ['part', 'measure', 'value', 'unit'][i].length));
const line = (t) => [t[0].padEnd(widths[0]), t[1].padEnd(widths[1]), t[2].padStart(widths[2]), t[3].padEnd(widths[3]), t[4]].join('  ').trimEnd();
console.log(line(['part', 'measure', 'value', 'unit', 'note']));
for (const t of table) console.log(line(t));

const date = new Date().toISOString();
const resultsDir = join(benchDir, 'results');
mkdirSync(resultsDir, { recursive: true });
const file = join(resultsDir, `${date.replace(/:/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ date, node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavg: { before: loadBefore, after: loadavg() }, parts, rows }, null, 2) + '\n');
console.log(`\nload average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(`written ${file}`);
process.exit(failed ? 1 : 0);
