// Bundles the shim and the simulators into dist/ with esbuild.
// The shim becomes a single executable (Node 24 + the minified bundle, packaging/sea.mjs); with
// --dev (or without Node 24) a launcher that runs the bundle on the machine's node instead.
// The simulators and the main job are bundles run by the machine's node.
import { build } from 'esbuild';
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSea, seaNode } from './sea.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const minify = process.argv.includes('--minify');
const dev = process.argv.includes('--dev') || !existsSync(seaNode);

const targets = [
  { entry: 'shim/main.ts', out: 'shim.cjs', exe: 'containerd-shim-kata-ts-v2' },
  { entry: 'test/sim/cloud-hypervisor/main.ts', out: 'sim/cloud-hypervisor.cjs', exe: 'sim/cloud-hypervisor' },
  { entry: 'test/sim/kata-agent/main.ts', out: 'sim/kata-agent.cjs', exe: 'sim/kata-agent' },
  { entry: 'packaging/main-job.ts', out: 'main-job.cjs' },
];

await mkdir(join(dist, 'sim'), { recursive: true });
const failed = [];
for (const t of targets) {
  if (!existsSync(join(root, t.entry))) continue;
  try {
    await buildOne(t);
  } catch (err) {
    failed.push(t.entry);
  }
}
if (failed.length) {
  console.error(`build: failed: ${failed.join(', ')}`);
  process.exit(1);
}

async function buildOne(t) {
  const outfile = join(dist, t.out);
  await build({
    entryPoints: [join(root, t.entry)],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify,
    sourcemap: minify ? false : 'inline',
    logLevel: 'warning',
    define: {
      'import.meta.url': '__import_meta_url',
      __KATA_TS_VERSION__: JSON.stringify(process.env.npm_package_version ?? '0.0.0-dev'),
      __KATA_TS_COMMIT__: JSON.stringify('dev'),
    },
    banner: { js: 'const __import_meta_url = require("url").pathToFileURL(__filename).href;' },
  });
  if (!t.exe) return;
  const exe = join(dist, t.exe);
  if (t.exe === 'containerd-shim-kata-ts-v2' && !dev) {
    await buildSea(join(root, t.entry), exe);
    return;
  }
  const tmp = `${exe}.${process.pid}`;
  await writeFile(tmp, `#!/bin/sh\nexec node --enable-source-maps "$(dirname "$0")/${t.out.split('/').pop()}" "$@"\n`);
  await chmod(tmp, 0o755);
  await rename(tmp, exe);
}
