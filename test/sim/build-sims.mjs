// Builds only the two simulators into dist/sim/ exactly as packaging/build.mjs does (for working
// on them while other parts of the tree don't build). `npm run build` remains the real build.
import { build } from 'esbuild';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
await mkdir(join(root, 'dist', 'sim'), { recursive: true });
for (const name of ['cloud-hypervisor', 'kata-agent']) {
  const entry = join(root, 'test', 'sim', name, 'main.ts');
  await build({
    entryPoints: [entry], outfile: join(root, 'dist', 'sim', `${name}.cjs`), bundle: true, platform: 'node',
    target: 'node20', format: 'cjs', sourcemap: 'inline', logLevel: 'warning',
    define: { 'import.meta.url': '__import_meta_url' },
    banner: { js: 'const __import_meta_url = require("url").pathToFileURL(__filename).href;' },
  }).catch((e) => { console.error(`${name}: ${e.message}`); });
  const exe = join(root, 'dist', 'sim', name);
  await rm(exe, { force: true });
  await writeFile(exe, `#!/bin/sh\nexec node --enable-source-maps "$(dirname "$0")/${name}.cjs" "$@"\n`);
  await chmod(exe, 0o755);
}
