// cloud-hypervisor simulator: launched exactly like the real binary (see test/sim/README.md).
import { existsSync, openSync, realpathSync, unlinkSync, writeSync } from 'node:fs';
import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import { helpText, parseCli, type Cli } from './cli.js';
import { CliError } from './errors.js';
import { EventMonitor } from './events.js';
import { readFaults } from './faults.js';
import { locateOpenApi, OpenApi } from './openapi.js';
import { createApiServer } from './api.js';
import { Vmm, type VmmLog } from './vm.js';
import { sweepStaleGuests } from './guest.js';

const version = '51.1.0';

function makeLog(cli: Cli): VmmLog {
  const fd = cli.logFile ? openSync(cli.logFile, 'a') : 2;
  const t0 = process.hrtime.bigint();
  const level = cli.verbosity; // 0 warn, 1 info, 2+ debug
  const write = (lvl: string, min: number, msg: string, f?: object) => {
    if (level < min) return;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const fields = f ? ' ' + Object.entries(f).map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)}`).join(' ') : '';
    try { writeSync(fd, `cloud-hypervisor: ${ms.toFixed(3)}ms: <sim> ${lvl}: ${msg}${fields}\n`); } catch { /* log is best effort */ }
  };
  return {
    error: (m, f) => write('ERROR', 0, m, f), warn: (m, f) => write('WARN', 0, m, f),
    info: (m, f) => write('INFO', 1, m, f), debug: (m, f) => write('DEBUG', 2, m, f),
  };
}

async function main(): Promise<void> {
  let cli: Cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (e) {
    if (e instanceof CliError) { process.stderr.write(e.message); process.exit(e.exitStatus); }
    throw e;
  }
  if (cli.help) { process.stdout.write(helpText); return; }
  if (cli.version) { process.stdout.write(`cloud-hypervisor v${version}\n`); return; }
  const faults = (() => {
    try { return readFaults(process.env); } catch (e) { process.stderr.write(`cloud-hypervisor (kata-ts simulator): ${(e as Error).message}\n`); process.exit(1); }
  })();
  if (faults.exitAtStart !== undefined) process.exit(faults.exitAtStart);
  if (!cli.apiSocket) {
    process.stderr.write('cloud-hypervisor (kata-ts simulator): --api-socket is required (VMs are only created through the API)\n');
    process.exit(1);
  }
  let openapiFile: string;
  try {
    openapiFile = locateOpenApi(process.env, dirname(process.argv[1] ?? process.cwd()));
  } catch (e) {
    process.stderr.write(`cloud-hypervisor (kata-ts simulator): refusing to start: ${(e as Error).message}\n`);
    process.exit(1);
  }
  const log = makeLog(cli);
  const events = new EventMonitor(cli.eventMonitor);
  events.emit('vmm', 'starting');
  const agentPath = process.env.CH_SIM_AGENT || join(dirname(process.argv[1]), 'kata-agent');
  const apiPath = 'path' in cli.apiSocket ? cli.apiSocket.path : undefined;
  let server: Server | undefined;
  const exit = (status: number) => {
    server?.close();
    if (apiPath) { try { unlinkSync(apiPath); } catch { /* gone */ } }
    events.close();
    log.info('exiting', { status });
    process.exit(status);
  };
  const vmm = new Vmm({ faults, events, log, agentPath, exit });
  // Loading the document may take a while on a busy machine: bind the socket first (vmm.ping
  // never waits for it); validators are compiled when a body first needs one.
  const openapi = new Promise<OpenApi>((resolve) => setImmediate(() => {
    // The parsed document is cached beside this executable (the build output), never in a temp dir.
    OpenApi.load(openapiFile, dirname(realpathSync(process.argv[1]))).then(resolve, (e: Error) => {
      process.stderr.write(`cloud-hypervisor (kata-ts simulator): cannot load ${openapiFile}: ${e.message}\n`);
      exit(1);
    });
  }));
  server = createApiServer({ openapi, vmm, faults, log, version, onShutdown: () => void vmm.exitVmm(0) });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => { log.info(`received ${sig}`); void vmm.exitVmm(0); });
  process.on('SIGPIPE', () => {});
  try {
    if (apiPath && existsSync(apiPath)) throw new Error(`${apiPath}: Address already in use (os error 98)`);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen('fd' in cli.apiSocket! ? { fd: cli.apiSocket.fd } : apiPath, () => resolve());
    });
  } catch (e) {
    process.stderr.write(`Error: Failed to start the VMM thread: Error creating API server: ${(e as Error).message}\n`);
    events.close();
    process.exit(1);
  }
  sweepStaleGuests(log);
  log.info('API server listening', { socket: apiPath ?? `fd=${'fd' in cli.apiSocket ? cli.apiSocket.fd : ''}`, pid: process.pid });
}

void main();
