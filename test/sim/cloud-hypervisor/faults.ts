// Fault knobs, read once from the environment (documented in test/sim/README.md). A runtime under
// test inherits them through its environment into the VMM it launches.

export interface Faults {
  /** CH_SIM_EXIT_AT_START=<status>: exit with this status right after parsing the command line. */
  exitAtStart?: number;
  /** CH_SIM_API_HANG=<endpoint>[,...]: requests to these endpoints are never answered (and block the queue). */
  apiHang: Set<string>;
  /** CH_SIM_API_FAIL=<endpoint>[,...]: these endpoints answer 500. */
  apiFail: Set<string>;
  /** CH_SIM_BOOT_DELAY_MS=<ms>: the guest agent starts listening this long after boot. */
  bootDelayMs: number;
  /** CH_SIM_GUEST_NEVER_LISTENS=1: the guest never answers on vsock. */
  guestNeverListens: boolean;
  /** CH_SIM_CRASH_AFTER_BOOT_MS=<ms>: the VMM kills itself (SIGKILL) this long after vm.boot. */
  crashAfterBootMs?: number;
  /** CH_SIM_GUEST_CONSOLE=<file>: append the guest console (agent logs) there, whatever the VmConfig says. */
  guestConsole?: string;
}

function num(env: NodeJS.ProcessEnv, key: string): number | undefined {
  const v = env[key];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${key}=${v}: expected a non-negative integer`);
  return n;
}

function list(env: NodeJS.ProcessEnv, key: string): Set<string> {
  return new Set((env[key] ?? '').split(',').map((s) => s.trim()).filter(Boolean));
}

export function readFaults(env: NodeJS.ProcessEnv): Faults {
  return {
    exitAtStart: num(env, 'CH_SIM_EXIT_AT_START'),
    apiHang: list(env, 'CH_SIM_API_HANG'),
    apiFail: list(env, 'CH_SIM_API_FAIL'),
    bootDelayMs: num(env, 'CH_SIM_BOOT_DELAY_MS') ?? 0,
    guestNeverListens: env.CH_SIM_GUEST_NEVER_LISTENS === '1',
    crashAfterBootMs: num(env, 'CH_SIM_CRASH_AFTER_BOOT_MS'),
    guestConsole: env.CH_SIM_GUEST_CONSOLE || undefined,
  };
}
