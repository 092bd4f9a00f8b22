// cloud-hypervisor's command line, parsed the way its clap definition does (long options take
// `--opt value` or `--opt=value`; `-v` counts). VM flags are recognised but refused: the
// simulator only boots VMs created through the API, which is all Kata does.
import { CliError } from './errors.js';

export type SocketSpec = { path: string } | { fd: number };

export interface Cli {
  apiSocket?: SocketSpec;
  eventMonitor?: SocketSpec;
  logFile?: string;
  verbosity: number;
  seccomp: 'true' | 'false' | 'log';
  version: boolean;
  help: boolean;
}

/** Options of cloud-hypervisor v51 that take a value and only matter when booting from the CLI. */
const vmFlags = new Set([
  'cpus', 'platform', 'memory', 'memory-zone', 'firmware', 'kernel', 'initramfs', 'cmdline',
  'rate-limit-group', 'disk', 'net', 'rng', 'balloon', 'fs', 'pmem', 'serial', 'console',
  'device', 'user-device', 'vdpa', 'vsock', 'numa', 'pci-segment', 'restore', 'tpm', 'gdb',
  'debug-console', 'landlock-rules', 'igvm', 'host-data', 'generic-vhost-user',
]);
/** VM flags that are plain switches. */
const vmSwitches = new Set(['pvpanic', 'watchdog', 'landlock']);

const usage = 'Usage: cloud-hypervisor [OPTIONS]';

function clapError(text: string): CliError {
  return new CliError(`error: ${text}\n\n${usage}\n\nFor more information, try '--help'.\n`, 2);
}

export function parseSocketSpec(flag: string, v: string): SocketSpec {
  if (!v.includes('=')) return { path: v };
  let path: string | undefined;
  let fd: number | undefined;
  for (const part of v.split(',')) {
    const [k, val = ''] = part.split('=', 2);
    if (k === 'path') path = val;
    else if (k === 'fd') {
      if (!/^\d+$/.test(val)) throw new CliError(`Error parsing --${flag}: invalid fd '${val}'\n`, 1);
      fd = Number(val);
    } else throw new CliError(`Error parsing --${flag}: unknown parameter '${k}'\n`, 1);
  }
  if (path !== undefined && fd !== undefined) throw new CliError(`Error parsing --${flag}: path and fd are mutually exclusive\n`, 1);
  if (path) return { path };
  if (fd !== undefined) return { fd };
  throw new CliError(`Error parsing --${flag}: missing path or fd\n`, 1);
}

export function parseCli(argv: string[]): Cli {
  const cli: Cli = { verbosity: 0, seccomp: 'true', version: false, help: false };
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-V' || arg === '--version') { cli.version = true; continue; }
    if (arg === '-h' || arg === '--help') { cli.help = true; continue; }
    if (/^-v+$/.test(arg)) { cli.verbosity += arg.length - 1; continue; }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-')) throw clapError(`unexpected argument '${arg}' found`);
      throw clapError(`unexpected argument '${arg}' found`);
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const takesValue = ['api-socket', 'event-monitor', 'log-file', 'seccomp'].includes(name) || vmFlags.has(name);
    if (!takesValue && !vmSwitches.has(name)) {
      throw clapError(`unexpected argument '${arg}' found\n\n  tip: to pass '${arg}' as a value, use '-- ${arg}'`);
    }
    if (vmSwitches.has(name)) {
      throw new CliError(`cloud-hypervisor (kata-ts simulator): --${name} is not supported; create the VM through the API (vm.create)\n`, 1);
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) {
        throw clapError(`a value is required for '--${name} <${name}>' but none was supplied`);
      }
      value = argv[++i];
    }
    if (vmFlags.has(name)) {
      throw new CliError(`cloud-hypervisor (kata-ts simulator): --${name} is not supported; create the VM through the API (vm.create)\n`, 1);
    }
    if (seen.has(name)) throw clapError(`the argument '--${name} <${name}>' cannot be used multiple times`);
    seen.add(name);
    switch (name) {
      case 'api-socket': cli.apiSocket = parseSocketSpec(name, value); break;
      case 'event-monitor': cli.eventMonitor = parseSocketSpec(name, value); break;
      case 'log-file': cli.logFile = value; break;
      case 'seccomp':
        if (value !== 'true' && value !== 'false' && value !== 'log') {
          throw new CliError(`Error parsing --seccomp: invalid value '${value}' (expected true, false or log)\n`, 1);
        }
        cli.seccomp = value;
        break;
    }
  }
  return cli;
}

export const helpText = `Launch a cloud-hypervisor VMM (kata-ts simulator: API-driven VMs only).

${usage}

Options:
      --api-socket <api-socket>        HTTP API socket (UNIX domain socket): path=</path/to/a/file> or fd=<fd>.
      --event-monitor <event-monitor>  File to report events on: path=</path/to/a/file> or fd=<fd>
      --log-file <log-file>            Log file. Standard error is used if not specified
  -v...                                Sets the level of debugging output
      --seccomp <seccomp>              Enable or disable seccomp filtering [default: true]
  -h, --help                           Print help
  -V, --version                        Print version
`;
