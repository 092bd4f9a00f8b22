// containerd-shim-kata-ts-v2: `start`, `delete`, `-info`, `-v`, or (no action) the daemon.
// The server side is imported lazily: `start` and `delete` run once per container and stay lean.
import { writeSync } from 'node:fs';
import { parseArgs, USAGE, type ShimArgs } from './cli.js';
import { describe } from './errors.js';
import { createLogger } from './log.js';
import { RUNTIME_NAME, SHIM_VERSION, decodeAnyOrUndefined, encodeRuntimeInfo } from './protocol.js';
import { readAllStdin, runStart } from './start.js';

// Set by the build (packaging/sea.mjs); absent when run from sources.
declare const __KATA_TS_COMMIT__: string | undefined;
const COMMIT = typeof __KATA_TS_COMMIT__ === 'string' ? __KATA_TS_COMMIT__ : 'unknown';

function writeAll(fd: number, b: Uint8Array | string): void {
  const buf = typeof b === 'string' ? Buffer.from(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
}

async function main(): Promise<number> {
  let args: ShimArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    writeAll(2, `containerd-shim-kata-ts-v2: ${describe(err)}\n`);
    return 2;
  }
  const { flags } = args;
  switch (args.action) {
    case 'help':
      writeAll(1, USAGE);
      return 0;
    case 'version':
      writeAll(1, `containerd-shim-kata-ts-v2:\n  Version: ${SHIM_VERSION}\n  Commit: ${COMMIT}\n  Runtime: ${RUNTIME_NAME}\n  Node: ${process.version}\n`);
      return 0;
    case 'info': {
      const stdin = await readAllStdin();
      writeAll(1, encodeRuntimeInfo({ options: decodeAnyOrUndefined(stdin) }));
      return 0;
    }
    case 'start': {
      try {
        const r = await runStart({ flags, env: process.env, cwd: process.cwd(), stdin: await readAllStdin() });
        writeAll(1, r.output);
        return 0;
      } catch (err) {
        // containerd shows start's combined output in its error.
        writeAll(2, `kata-ts start: ${describe(err)}\n`);
        return 1;
      }
    }
    case 'delete': {
      if (!flags.id) {
        writeAll(2, 'containerd-shim-kata-ts-v2: delete needs -id (the container or sandbox to clean up after)\n');
        return 2;
      }
      const { runDelete } = await import('./delete.js');
      const log = createLogger({ fd: 2, debug: flags.debug, fields: { id: flags.id } });
      writeAll(1, await runDelete({ flags, env: process.env, cwd: process.cwd(), log }));
      return 0;
    }
    case 'serve': {
      const { runServe } = await import('./serve.js');
      try {
        await runServe({ flags, env: process.env });
      } catch (err) {
        // Run by hand with no arguments: say what this is rather than only "EINVAL on fd 3".
        const hint = flags.socket || flags.namespace ? '' : ' (the daemon is started by containerd through `start`; see -h)';
        writeAll(2, `containerd-shim-kata-ts-v2: ${describe(err)}${hint}\n`);
        return 1;
      }
      return -1;
    }
  }
}

main().then(
  (code) => { if (code >= 0) process.exit(code); },
  (err) => {
    try { writeAll(2, `containerd-shim-kata-ts-v2: ${describe(err)}\n`); } catch { /* nothing to tell */ }
    process.exit(1);
  },
);
