// The reference run: the same harness and image with runc's shim. If this fails, kata-ts
// failures in the same run say nothing about kata-ts.
import { describe, expect, test } from 'vitest';
import { Containerd, image, leftovers, uniqueId } from './harness.js';
import { missing, tools } from '../env.js';

describe.each(['1.6', '1.7', '2'] as const)('harness on containerd %s', (version) => {
  const bin = { '1.6': tools.containerd16, '1.7': tools.containerd17, '2': tools.containerd2 }[version];
  const why = missing(bin, tools.ctr, tools.runc);
  test.skipIf(why)(`runc runs the local busybox image${why ? ` (skipped: ${why})` : ''}`, async () => {
    const c = await Containerd.start({ version });
    try {
      const id = uniqueId('runc');
      const r = await c.ctr(['run', '--rm', '--runtime', 'io.containerd.runc.v2', image, id, 'sh', '-c', 'echo out; echo err >&2; exit 7']);
      expect(r).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n' });
      expect(leftovers([id])).toEqual([]);
    } finally {
      await c.stop();
    }
  });
});
