// The shim's command line, parsed the way Go's `flag` package does it: containerd builds the
// argument list for Go shims, so every spelling Go accepts must work here too.
import { UsageError } from './errors.js';

export type Action = 'start' | 'delete' | 'serve' | 'version' | 'info' | 'help';

export interface ShimFlags {
  namespace: string;
  /** containerd's gRPC socket (not the ttrpc one). */
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  debug: boolean;
  /** Serve on this path instead of the inherited fd 3. */
  socket: string;
  debugSocket: string;
  version: boolean;
  help: boolean;
  info: boolean;
}

export interface ShimArgs {
  flags: ShimFlags;
  action: Action;
}

type FlagSpec = { key: keyof ShimFlags; bool: boolean };

const FLAGS: Record<string, FlagSpec> = {
  namespace: { key: 'namespace', bool: false },
  address: { key: 'address', bool: false },
  'publish-binary': { key: 'publishBinary', bool: false },
  id: { key: 'id', bool: false },
  bundle: { key: 'bundle', bool: false },
  debug: { key: 'debug', bool: true },
  socket: { key: 'socket', bool: false },
  'debug-socket': { key: 'debugSocket', bool: false },
  v: { key: 'version', bool: true },
  version: { key: 'version', bool: true },
  info: { key: 'info', bool: true },
  h: { key: 'help', bool: true },
  help: { key: 'help', bool: true },
};

/** What `-h` prints: the commands and flags (containerd passes the same ones to every shim). */
export const USAGE = `Usage: containerd-shim-kata-ts-v2 [flags] [start|delete]

containerd shim v2 (runtime io.containerd.kata-ts.v2) that runs each pod in its own Cloud
Hypervisor VM, reading Kata Containers' configuration.toml. containerd runs it; you rarely do.

Commands:
  start     start (or join) the pod's shim daemon; print its address for containerd
  delete    clean up after a shim that died (VM, virtiofsd, mounts); print a DeleteResponse
  (none)    serve the task API on fd 3 or -socket (the daemon that start spawns)

Flags:
  -namespace string       containerd namespace
  -address string         containerd's gRPC socket
  -publish-binary string  containerd's binary (unused: events go to TTRPC_ADDRESS)
  -id string              task id (the sandbox id for a pod's first container)
  -bundle string          bundle directory (delete)
  -socket string          serve on this socket path instead of fd 3
  -debug-socket string    accepted for containerd 2.x; unused
  -debug                  debug logging (also [runtime] enable_debug in the Kata config)
  -info                   print RuntimeInfo (protobuf) for the runtime options on stdin
  -v, -version            print version, commit and the bundled Node version
  -h, -help               print this help

Config: the runtime options' ConfigPath, then KATA_CONF_FILE, then
/etc/kata-containers/ and /opt/kata/share/defaults/kata-containers/ (see config/README.md).
`;

function defaults(): ShimFlags {
  return {
    namespace: '', address: '', publishBinary: '', id: '', bundle: '',
    debug: false, socket: '', debugSocket: '', version: false, info: false, help: false,
  };
}

/** Go's strconv.ParseBool, which `flag` uses for `-debug=value`. */
function parseBool(name: string, v: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new UsageError(`invalid boolean value "${v}" for -${name}`);
}

/** Parses argv (without node and script): flags first, then the action word. */
export function parseArgs(argv: readonly string[]): ShimArgs {
  const flags = defaults();
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { i++; break; }
    // Go: "-" alone and anything not starting with "-" end the flags.
    if (a.length < 2 || a[0] !== '-') break;
    let body = a[1] === '-' ? a.slice(2) : a.slice(1);
    if (body === '' || body[0] === '-' || body[0] === '=') throw new UsageError(`bad flag syntax: ${a}`);
    let value: string | undefined;
    const eq = body.indexOf('=');
    if (eq >= 0) { value = body.slice(eq + 1); body = body.slice(0, eq); }
    const spec = FLAGS[body];
    if (!spec) throw new UsageError(`flag provided but not defined: -${body}`);
    if (spec.bool) {
      (flags as any)[spec.key] = value === undefined ? true : parseBool(body, value);
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${body}`);
      value = argv[++i];
    }
    (flags as any)[spec.key] = value;
  }
  const rest = argv.slice(i);
  let action: Action;
  if (flags.help) action = 'help';
  else if (flags.version) action = 'version';
  else if (flags.info) action = 'info';
  else if (rest.length === 0) action = 'serve';
  else if (rest[0] === 'start' || rest[0] === 'delete') action = rest[0];
  else throw new UsageError(`unknown action "${rest[0]}" (want start, delete, or none to serve)`);
  return { flags, action };
}

/** What containerd tells a shim through its environment. */
export interface ShimEnv {
  /** containerd's ttrpc socket for events (a plain path). */
  ttrpcAddress: string;
  grpcAddress: string;
  namespace: string;
  /** Set by containerd 1.7 and later (always "2"); absent on 1.6. */
  maxShimVersion: number | undefined;
  schedCore: boolean;
}

export function readEnv(env: NodeJS.ProcessEnv, flags: ShimFlags): ShimEnv {
  const max = env.MAX_SHIM_VERSION;
  const grpcAddress = env.GRPC_ADDRESS || flags.address;
  return {
    ttrpcAddress: env.TTRPC_ADDRESS || (grpcAddress ? `${grpcAddress}.ttrpc` : ''),
    grpcAddress,
    namespace: env.NAMESPACE || flags.namespace,
    maxShimVersion: max !== undefined && max !== '' && /^\d+$/.test(max) ? Number(max) : undefined,
    schedCore: env.SCHED_CORE === '1',
  };
}

/** Arguments the daemon is re-executed with (what containerd's shim library passes). */
export function daemonArgs(f: ShimFlags): string[] {
  const a = ['-namespace', f.namespace, '-address', f.address, '-publish-binary', f.publishBinary, '-id', f.id];
  if (f.debug) a.push('-debug');
  return a;
}
