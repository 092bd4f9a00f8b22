// Writes the Kata clh configuration the kata-ts run uses: Kata's own template, pointed at the
// VMM, virtiofsd, kernel and image the way an operator edits it (test/kata-config.ts).
// run.sh bundles this with esbuild and runs it: node <bundle> <out> <vmm> <virtiofsd> <kernel> <image>
import { writeFileSync } from 'node:fs';
import { kataClhConfigFor } from '../kata-config.js';

const [out, vmm, virtiofsd, kernel, image] = process.argv.slice(2);
if (!out || !vmm || !virtiofsd || !kernel || !image) {
  console.error('usage: render-kata-config <out> <vmm> <virtiofsd> <kernel> <image>');
  process.exit(2);
}
writeFileSync(out, kataClhConfigFor({ vmm, virtiofsd, kernel, image, debug: true }));
