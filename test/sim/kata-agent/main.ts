// kata-agent simulator: the "guest" the cloud-hypervisor simulator boots. It serves
// grpc.AgentService and grpc.Health over ttrpc on its vsock port (a Unix socket in the guest's
// vsock dir) and runs containers with runc. It ends with its VM: stdin EOF (the VMM is gone)
// or SIGTERM (VM shutdown) → every container killed and deleted, private dirs removed.
import { createServer, type Server as NetServer } from 'node:net';
import { rmSync, rmdirSync, readdirSync, existsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Code, Server, StatusError, type UnaryHandler } from 'ttrpc-ts';
import { parseCmdline, readGuestView, removeGuestDir, type GuestView } from '../guest.js';
import { Agent } from './agent.js';
import { rustServerQuirks } from './rust-server.js';
import type { ProcessLog } from './process.js';

// Methods of agent.proto the simulator does not implement: answered like the Rust ttrpc server
// answers a method it does not know.
const unimplemented = ['UpdateEphemeralMounts', 'GetDiagnosticData', 'ListInterfaces', 'ListRoutes', 'GetIPTables', 'SetIPTables',
  'GetMetrics', 'MemAgentMemcgSet', 'MemAgentCompactSet', 'ReseedRandomDev', 'MemHotplugByProbe', 'CopyFile', 'AddSwap',
  'AddSwapPath', 'GetVolumeStats', 'ResizeVolume', 'SetPolicy'];

function makeLog(debug: boolean): ProcessLog & { error(msg: string, f?: object): void } {
  const write = (level: string, msg: string, f?: object) => {
    const line = JSON.stringify({ level, msg, source: 'agent', pid: process.pid, ...f }) + '\n';
    try { writeSync(2, line); } catch { /* console gone */ }
  };
  return { debug: (m, f) => { if (debug) write('DEBG', m, f); }, info: (m, f) => write('INFO', m, f), warn: (m, f) => write('WARN', m, f), error: (m, f) => write('ERRO', m, f) };
}

function vsockPort(cmdline: Map<string, string>): number {
  const addr = cmdline.get('agent.server_addr');
  if (!addr) return 1024;
  const m = /^vsock:\/\/-?\d+:(\d+)$/.exec(addr);
  if (!m) throw new Error(`agent.server_addr=${addr}: expected vsock://<cid>:<port>`);
  return Number(m[1]);
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--guest');
  if (i < 0 || !process.argv[i + 1]) {
    process.stderr.write('kata-agent (kata-ts simulator): usage: kata-agent --guest <guest.json> (started by the cloud-hypervisor simulator)\n');
    process.exit(2);
  }
  const view: GuestView = readGuestView(process.argv[i + 1]);
  const cmdline = parseCmdline(view.cmdline);
  const log = makeLog(cmdline.get('agent.log') === 'debug');
  const port = vsockPort(cmdline);
  let listener: NetServer | undefined;
  const ttrpc = new Server({ log });
  let ending = false;
  const stopListening = () => {
    listener?.close();
    listener = undefined;
    rmSync(join(view.vsockDir, String(port)), { force: true });
  };
  const agent = new Agent(view, log, () => { stopListening(); ttrpc.close(); });
  const health = agent.health();
  ttrpc.register('grpc.Health', health);
  const methods = traced(agent.service(), log);
  for (const m of unimplemented) methods[m] = () => { throw new StatusError(Code.UNIMPLEMENTED, `${m} method`); };
  ttrpc.register('grpc.AgentService', methods);
  const services = new Map([['grpc.Health', new Set(Object.keys(health))], ['grpc.AgentService', new Set(Object.keys(methods))]]);

  const end = async (why: string) => {
    if (ending) return;
    ending = true;
    log.info('guest shutting down', { why });
    stopListening();
    ttrpc.close();
    await agent.destroyAll().catch((e) => log.error('cleanup failed', { err: (e as Error).message }));
    removeGuestCgroups(view.cgroupParent);
    const busy = removeGuestDir(view.guestDir);
    if (busy.length) log.error('guest dir kept: still mounted below it', { dir: view.guestDir, mounts: busy });
    process.exit(0);
  };
  // The VMM holds our stdin: EOF means the VM is gone, whatever killed the VMM.
  process.stdin.on('data', () => {});
  process.stdin.on('end', () => void end('stdin closed (VMM gone)'));
  process.stdin.on('error', () => void end('stdin error (VMM gone)'));
  process.on('SIGTERM', () => void end('SIGTERM (VM shutdown)'));
  process.on('SIGINT', () => void end('SIGINT'));
  process.on('SIGPIPE', () => {});
  if (process.env.KATA_AGENT_SIM_OOM) {
    const [cid, ms] = process.env.KATA_AGENT_SIM_OOM.split('@');
    setTimeout(() => agent.injectOom(cid), Number(ms ?? 0));
  }

  if (view.neverListen) { log.warn('fault injection: the agent never listens'); return; }
  await new Promise((r) => setTimeout(r, view.bootDelayMs));
  if (ending) return;
  listener = createServer((sock) => ttrpc.serveConnection(rustServerQuirks(sock, services)));
  listener.listen(join(view.vsockDir, String(port)), () => log.info('agent listening', { port, version: '3.32.0-kata-ts-sim' }));
}

/** Logs every call and its outcome at debug level (agent.log=debug on the kernel cmdline). */
function traced(methods: Record<string, UnaryHandler>, log: ProcessLog): Record<string, UnaryHandler> {
  const out: Record<string, UnaryHandler> = {};
  for (const [name, h] of Object.entries(methods)) {
    out[name] = async (payload, ctx) => {
      const t0 = Date.now();
      log.debug('rpc', { method: name });
      try {
        const r = await h(payload, ctx);
        log.debug('rpc done', { method: name, ms: Date.now() - t0 });
        return r;
      } catch (e) {
        log.debug('rpc failed', { method: name, ms: Date.now() - t0, err: (e as Error).message });
        throw e;
      }
    };
  }
  return out;
}

/** The guest's cgroup (created by the VMM in the freezer hierarchy, by runc in the others). */
function removeGuestCgroups(parent: string): void {
  if (!parent) return;
  let ctrls: string[] = [];
  try { ctrls = readdirSync('/sys/fs/cgroup'); } catch { return; }
  for (const c of ctrls) {
    const d = join('/sys/fs/cgroup', c, parent);
    if (!existsSync(d)) continue;
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) try { rmdirSync(join(d, e.name)); } catch { /* busy */ }
      rmdirSync(d);
    } catch { /* busy or gone */ }
  }
}

void main().catch((e) => {
  process.stderr.write(`kata-agent (kata-ts simulator): ${(e as Error).stack}\n`);
  process.exit(1);
});
