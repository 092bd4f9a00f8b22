// Benchmark client process: `concurrency` callers loop on Echo for `seconds` (after `warmup`); prints {calls, seconds}
// like the Go peer's -mode bench. The request (a BytesValue) is encoded once, as a caller would
// hand ttrpc-ts bytes it had already encoded.
import { Client } from 'ttrpc-ts';
import { bv, SERVICE } from '../test/interop/ttrpc/ts-peer.js';

const [socket, conc, size, seconds, warmup] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6] ?? 0)];
const client = await Client.connect(socket);
const payload = bv(Buffer.alloc(size, 1));

async function loop(secs: number): Promise<{ calls: number; elapsed: number }> {
  let calls = 0;
  const start = performance.now();
  const stop = start + secs * 1000;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (performance.now() < stop) {
        const out = await client.call(SERVICE, 'Echo', payload);
        if (out.length !== payload.length) throw new Error(`echo returned ${out.length} bytes, want ${payload.length}`);
        calls++;
      }
    }),
  );
  return { calls, elapsed: (performance.now() - start) / 1000 };
}

if (warmup > 0) await loop(warmup); // JIT and buffers warm, as a long-lived shim would be
const { calls, elapsed } = await loop(seconds);
client.close();
process.stdout.write(JSON.stringify({ calls, seconds: elapsed }) + '\n');
