// Builds dist/containerd-shim-kata-ts-v2 as one file: Node 24 (LTS) with the minified shim
// bundle embedded as a single executable application (code cache on, so `start` pays no parse).
// Usage: node packaging/sea.mjs [entry.ts] [out]   (also called by packaging/build.mjs)
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// V8/Node flags baked into the executable (SEA "execArgv"; KATA_TS_SEA_EXEC_ARGV="--a --b" to try
// some). None by default: measured on the daemon with one container, --max-semi-space-size=1 saves
// ~1.6 MB RSS but slows stdio by a third, --no-opt/--no-maglev ~3 MB for 1.5-2x slower stdio;
// --lite-mode (no optimizing tiers) saves ~11 MB of idle RSS, 8 of it shared executable pages,
// its CPU cost on stdio and exec not measured yet; --optimize-for-size and --v8-pool-size=1 save
// under 1 MB.
export const seaExecArgv = process.env.KATA_TS_SEA_EXEC_ARGV !== undefined ? process.env.KATA_TS_SEA_EXEC_ARGV.split(' ').filter(Boolean) : [];
export const seaNode = process.env.KATA_TS_SEA_NODE ?? join(root, '.deps', 'node24', 'bin', 'node');

export async function buildSea(entry = join(root, 'shim', 'main.ts'), out = join(root, 'dist', 'containerd-shim-kata-ts-v2'), execArgv = seaExecArgv) {
const node = seaNode;
if (!existsSync(node)) throw new Error(`sea: Node 24 not found at ${node} (run .ci/setup)`);
mkdirSync(join(root, 'dist'), { recursive: true });
// A private work dir: several builds may run at once.
const work = mkdtempSync(join(root, 'dist', '.sea-'));
try {
const git = (args) => {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
};
const pkg = JSON.parse(execFileSync('node', ['-p', 'JSON.stringify(require("./package.json"))'], { cwd: root, encoding: 'utf8' }));

await build({
  entryPoints: [entry],
  outfile: join(work, 'main.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
  define: {
    'import.meta.url': '__import_meta_url',
    __KATA_TS_VERSION__: JSON.stringify(pkg.version),
    __KATA_TS_COMMIT__: JSON.stringify(git(['rev-parse', '--short=12', 'HEAD'])),
  },
  banner: { js: 'const __import_meta_url = require("url").pathToFileURL(process.execPath).href;' },
});

writeFileSync(join(work, 'sea-config.json'), JSON.stringify({
  main: join(work, 'main.cjs'),
  output: join(work, 'prep.blob'),
  disableExperimentalSEAWarning: true,
  useCodeCache: true,
  execArgv,
}));
// The code cache is only accepted by a V8 with the same flags: generate it under execArgv too.
// Both tools chatter (postject warns about every .note section it cannot name); a failure still
// throws with their output in the error.
execFileSync(node, [...execArgv, '--experimental-sea-config', join(work, 'sea-config.json')], { stdio: 'pipe' });

const exe = join(work, 'node');
copyFileSync(node, exe);
chmodSync(exe, 0o755);
// Symbols and debug info are ~20 MiB of the official binary; the executable needs neither.
try {
  execFileSync('strip', ['--strip-all', exe], { stdio: 'pipe' });
} catch {
  console.warn('sea: strip not available; the binary keeps its debug info');
}
execFileSync(process.execPath, [join(root, 'node_modules', 'postject', 'dist', 'cli.js'), exe, 'NODE_SEA_BLOB', join(work, 'prep.blob'),
  '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], { stdio: 'pipe' });
mkdirSync(dirname(out), { recursive: true });
renameSync(exe, out);
return statSync(out).size;
} finally {
  rmSync(work, { recursive: true, force: true });
}
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[3] ?? join(root, 'dist', 'containerd-shim-kata-ts-v2');
  const size = await buildSea(process.argv[2], out);
  console.log(`sea: ${out} (${(size / 1048576).toFixed(1)} MiB)`);
}
