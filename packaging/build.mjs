// Bundles the shim and the simulators into dist/ with esbuild.
// The shim is bundled as one CommonJS file (what Node's single executable support embeds);
// the simulators as executables run by the machine's node.
import { build } from 'esbuild';
import { chmod, mkdir, writeFile, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const minify = process.argv.includes('--minify');

const targets = [
  { entry: 'shim/main.ts', out: 'shim.cjs', exe: 'containerd-shim-kata-ts-v2' },
  { entry: 'test/sim/cloud-hypervisor/main.ts', out: 'sim/cloud-hypervisor.cjs', exe: 'sim/cloud-hypervisor' },
  { entry: 'test/sim/kata-agent/main.ts', out: 'sim/kata-agent.cjs', exe: 'sim/kata-agent' },
];

await mkdir(join(dist, 'sim'), { recursive: true });
for (const t of targets) {
  if (!existsSync(join(root, t.entry))) continue;
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
    define: { 'import.meta.url': '__import_meta_url' },
    banner: { js: 'const __import_meta_url = require("url").pathToFileURL(__filename).href;' },
  });
  const exe = join(dist, t.exe);
  if (t.exe === 'containerd-shim-kata-ts-v2' && existsSync(join(dist, '.sea'))) continue;
  // Development launcher; `npm run build -- --sea` replaces the shim's with a single executable.
  await rm(exe, { force: true });
  await writeFile(exe, `#!/bin/sh\nexec node --enable-source-maps "$(dirname "$0")/${t.out.split('/').pop()}" "$@"\n`);
  await chmod(exe, 0o755);
}
