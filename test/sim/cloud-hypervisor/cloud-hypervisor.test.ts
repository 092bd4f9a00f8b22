// The built simulator executable against cloud-hypervisor's contract: CLI, HTTP API, boot with
// the real virtiofsd, hybrid vsock, faults, and that every exit path leaves nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { missing, tools } from '../../env.js';
import { alive, api, childrenOf, dialVsock, dialVsockRetry, lineReader, simLeftovers, start, waitFor, type Started } from '../testkit.js';

const skip = missing(tools.simCloudHypervisor, tools.virtiofsd);
if (skip) console.warn(`skipping cloud-hypervisor simulator tests: ${skip} (npm run build)`);
const echoGuest = join(import.meta.dirname, 'testdata', 'echo-guest.mjs');

let dir: string;
let n = 0;
let vmms: Started[] = [];
let daemons: ChildProcess[] = [];

let guestTmp: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ch-sim-test-'));
  // The VMMs' guest dirs go here, so that leftovers are ours (other suites run simulators too).
  guestTmp = join(dir, 'tmp');
  mkdirSync(guestTmp);
});
afterEach(async () => {
  for (const v of vmms) if (v.child.exitCode === null && v.child.signalCode === null) { v.child.kill('SIGKILL'); await v.exited; }
  for (const d of daemons) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
  vmms = [];
  daemons = [];
  await waitFor('the guests to clean up after their VMM', () => simLeftovers(guestTmp).length === 0, 5_000).catch(() => {});
  expect(simLeftovers(guestTmp)).toEqual([]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function vmm(env: NodeJS.ProcessEnv = {}, extra: string[] = []): Promise<{ v: Started; sock: string; vmDir: string }> {
  const vmDir = join(dir, `vm${n++}`);
  mkdirSync(vmDir);
  const sock = join(vmDir, 'clh-api.sock');
  const v = start(tools.simCloudHypervisor, ['--api-socket', sock, '-vv', ...extra], { CH_SIM_AGENT: echoGuest, TMPDIR: guestTmp, ...env });
  vmms.push(v);
  // The VMM's log (-vv) tells what it was doing when a test fails.
  onTestFailed(() => console.log(`cloud-hypervisor simulator log:\n${v.stderr()}`));
  await waitFor(`${sock}`, () => existsSync(sock) || v.child.exitCode !== null);
  return { v, sock, vmDir };
}

async function virtiofsd(vmDir: string): Promise<{ d: ChildProcess; socket: string; shared: string; exited: Promise<number | null> }> {
  const shared = join(vmDir, 'shared');
  mkdirSync(shared);
  const socket = join(vmDir, 'virtiofsd.sock');
  const d = spawn(tools.virtiofsd, ['--socket-path', socket, '--shared-dir', shared, '--cache', 'auto', '--thread-pool-size=1', '--log-level', 'error'], { stdio: 'ignore' });
  daemons.push(d);
  const exited = new Promise<number | null>((r) => d.once('exit', (c) => r(c)));
  await waitFor('virtiofsd socket', () => existsSync(socket));
  return { d, socket, shared, exited };
}

function vmConfig(vmDir: string, fsSocket?: string) {
  const kernel = join(vmDir, 'vmlinux');
  writeFileSync(kernel, '');
  return {
    payload: { kernel, cmdline: 'panic=1 agent.log=debug quiet' },
    cpus: { boot_vcpus: 1, max_vcpus: 2 },
    memory: { size: 2048 * 2 ** 20, shared: true },
    ...(fsSocket ? { fs: [{ tag: 'kataShared', socket: fsSocket, num_queues: 1, queue_size: 1024 }] } : {}),
    vsock: { cid: 3, socket: join(vmDir, 'clh.sock') },
    serial: { mode: 'Off' }, console: { mode: 'Off' },
  };
}

describe.skipIf(!!skip)('cloud-hypervisor simulator executable', () => {
  it('answers the API like cloud-hypervisor: ping, 404, 400 rules, 500 errors, vmm.shutdown exits', async () => {
    const ev = join(dir, `ev${n}`);
    const { v, sock, vmDir } = await vmm({}, ['--event-monitor', `path=${ev}`]);
    const ping = await api(sock, 'GET', 'vmm.ping');
    expect(ping.status).toBe(200);
    expect(ping.headers.server).toBe('Cloud Hypervisor API');
    expect(ping.json).toMatchObject({ version: expect.any(String), pid: v.child.pid });
    expect((await api(sock, 'GET', 'vm.nothing')).status).toBe(404);
    expect((await api(sock, 'GET', 'vm.boot')).status).toBe(400);
    expect((await api(sock, 'PUT', 'vm.boot', '{}')).status).toBe(400);
    expect((await api(sock, 'PUT', 'vm.create')).status).toBe(400);
    const bad = await api(sock, 'PUT', 'vm.create', { cpus: { boot_vcpus: 1, max_vcpus: 1 } });
    expect(bad).toMatchObject({ status: 400, json: ['Cannot deserialize JSON payload', expect.stringContaining('payload')] });
    const notCreated = await api(sock, 'GET', 'vm.info');
    expect(notCreated).toMatchObject({ status: 500, json: expect.arrayContaining(['VM is not created']) });
    expect((await api(sock, 'PUT', 'vm.create', vmConfig(vmDir))).status).toBe(204);
    expect((await api(sock, 'PUT', 'vm.create', vmConfig(vmDir))).status).toBe(500);
    expect((await api(sock, 'GET', 'vm.info')).json).toMatchObject({ state: 'Created', config: { cpus: { boot_vcpus: 1 } } });
    expect((await api(sock, 'PUT', 'vm.add-disk', { path: join(vmDir, 'vmlinux') })).status).toBe(204);
    expect((await api(sock, 'PUT', 'vm.resize', { desired_vcpus: 2 })).status).toBe(204);
    expect((await api(sock, 'PUT', 'vm.boot')).status).toBe(204);
    expect((await api(sock, 'GET', 'vm.info')).json).toMatchObject({ state: 'Running', memory_actual_size: 2048 * 2 ** 20 });
    expect((await api(sock, 'GET', 'vm.counters')).status).toBe(200);
    expect((await api(sock, 'PUT', 'vm.pause')).status).toBe(204);
    expect((await api(sock, 'PUT', 'vm.pause')).status).toBe(500);
    expect((await api(sock, 'PUT', 'vm.resume')).status).toBe(204);
    expect((await api(sock, 'PUT', 'vm.add-disk', { path: join(vmDir, 'vmlinux') })).json).toMatchObject({ id: expect.any(String), bdf: expect.any(String) });
    const down = await api(sock, 'PUT', 'vmm.shutdown');
    expect(down.status).toBe(200);
    expect(await v.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(sock)).toBe(false);
    expect(existsSync(join(vmDir, 'clh.sock'))).toBe(false);
    const events = readFileSync(ev, 'utf8').split('\n\n').filter(Boolean).map((e) => JSON.parse(e));
    expect(events.map((e) => `${e.source}/${e.event}`)).toEqual([
      'vmm/starting', 'vm/booting', 'vm/booted', 'vm/pausing', 'vm/paused', 'vm/resuming', 'vm/resumed', 'vm/shutdown', 'vmm/shutdown',
    ]);
    expect(events[0]).toMatchObject({ timestamp: { secs: expect.any(Number), nanos: expect.any(Number) }, properties: null });
  });

  it('boots with the real virtiofsd: vhost-user handshake, shared dir found from the daemon, hybrid vsock', async () => {
    const { v, sock, vmDir } = await vmm();
    const fs = await virtiofsd(vmDir);
    const cfg = vmConfig(vmDir, fs.socket);
    // virtio-fs without shared memory is refused at create (config validation).
    const noShared = await api(sock, 'PUT', 'vm.create', { ...cfg, memory: { size: 2 ** 30 } });
    expect(noShared.status).toBe(500);
    expect(noShared.json.join(' ')).toMatch(/shared memory/);
    expect((await api(sock, 'PUT', 'vm.create', cfg)).status).toBe(204);
    expect((await api(sock, 'PUT', 'vm.boot')).status).toBe(204);
    const conn = await dialVsockRetry(cfg.vsock.socket, 1024, 15_000, 'ping\n');
    expect(conn.ok).toMatch(/^OK \d+$/);
    expect(Number(conn.ok.slice(3))).toBeGreaterThanOrEqual(2 ** 30);
    const lines = lineReader(conn.socket, conn.rest);
    const view = JSON.parse(await lines.next());
    expect(view).toMatchObject({ cmdline: cfg.payload.cmdline, fs: [{ tag: 'kataShared', hostDir: fs.shared }] });
    // Bytes written right after the CONNECT line reach the guest (it echoes them).
    expect(await lines.next()).toBe('ping');
    const second = await dialVsock(cfg.vsock.socket, 1024);
    expect(second).not.toBe('eof');
    if (second !== 'eof') expect(Number(second.ok.slice(3))).toBe(Number(conn.ok.slice(3)) + 1);
    expect(await dialVsock(cfg.vsock.socket, 1025)).toBe('eof');
    const guestPid = childrenOf(v.child.pid!).find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('echo-guest'));
    expect(guestPid).toBeDefined();
    expect(alive(fs.d.pid!)).toBe(true);
    // vm.shutdown stops the guest and drops the device: virtiofsd exits by itself, like with the real VMM.
    expect((await api(sock, 'PUT', 'vm.shutdown')).status).toBe(204);
    expect(await fs.exited).toBe(0);
    expect(alive(guestPid!)).toBe(false);
    expect(existsSync(cfg.vsock.socket)).toBe(false);
    expect((await api(sock, 'GET', 'vm.info')).json).toMatchObject({ state: 'Created' });
    // Booting again fails: the vhost-user backend is gone.
    const again = await api(sock, 'PUT', 'vm.boot');
    expect(again.status).toBe(500);
    expect(again.json.join(' ')).toMatch(/vhost-user/);
    await api(sock, 'PUT', 'vmm.shutdown');
    expect((await v.exited).code).toBe(0);
  });

  it('refuses boot when the kernel is missing or the vsock path is taken', async () => {
    const { sock, vmDir } = await vmm();
    const cfg = vmConfig(vmDir);
    await api(sock, 'PUT', 'vm.create', { ...cfg, payload: { kernel: join(vmDir, 'nope') } });
    expect((await api(sock, 'PUT', 'vm.boot')).json.join(' ')).toMatch(/kernel file .* No such file/);
    await api(sock, 'PUT', 'vm.delete');
    writeFileSync(cfg.vsock.socket, '');
    await api(sock, 'PUT', 'vm.create', cfg);
    const r = await api(sock, 'PUT', 'vm.boot');
    expect(r.status).toBe(500);
    expect(r.json.join(' ')).toMatch(/Address already in use/);
  });

  it('guest boot delay: CONNECT gets EOF until the guest listens', async () => {
    const { sock, vmDir } = await vmm({ CH_SIM_BOOT_DELAY_MS: '700' });
    const cfg = vmConfig(vmDir);
    await api(sock, 'PUT', 'vm.create', cfg);
    await api(sock, 'PUT', 'vm.boot');
    const booted = Date.now();
    expect(await dialVsock(cfg.vsock.socket, 1024)).toBe('eof');
    await dialVsockRetry(cfg.vsock.socket, 1024);
    expect(Date.now() - booted).toBeGreaterThanOrEqual(700);
  });

  it('a guest that never listens', async () => {
    const { sock, vmDir } = await vmm({ CH_SIM_GUEST_NEVER_LISTENS: '1' });
    const cfg = vmConfig(vmDir);
    await api(sock, 'PUT', 'vm.create', cfg);
    await api(sock, 'PUT', 'vm.boot');
    await new Promise((r) => setTimeout(r, 300));
    expect(await dialVsock(cfg.vsock.socket, 1024)).toBe('eof');
  });

  it('vm.reboot restarts the guest from scratch; vm.power-button powers it off and the VMM exits', async () => {
    const { v, sock, vmDir } = await vmm();
    const cfg = vmConfig(vmDir);
    await api(sock, 'PUT', 'vm.create', cfg);
    await api(sock, 'PUT', 'vm.boot');
    const greeting = async () => { const c = await dialVsockRetry(cfg.vsock.socket, 1024); return JSON.parse(await lineReader(c.socket, c.rest).next()); };
    const first = await greeting();
    expect((await api(sock, 'PUT', 'vm.reboot')).status).toBe(204);
    const second = await greeting();
    expect(second.guestDir).not.toBe(first.guestDir);
    expect(existsSync(first.guestDir)).toBe(false);
    expect((await api(sock, 'GET', 'vm.info')).json.state).toBe('Running');
    expect((await api(sock, 'PUT', 'vm.power-button')).status).toBe(204);
    expect(await v.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(second.guestDir)).toBe(false);
  });

  it('SIGKILL of the VMM: the guest notices and cleans up', async () => {
    const { v, sock, vmDir } = await vmm();
    await api(sock, 'PUT', 'vm.create', vmConfig(vmDir));
    await api(sock, 'PUT', 'vm.boot');
    const guest = childrenOf(v.child.pid!)[0];
    expect(guest).toBeDefined();
    v.child.kill('SIGKILL');
    await v.exited;
    await waitFor('the guest to exit', () => !alive(guest));
  });

  it('a guest crash powers the VM off and the VMM exits', async () => {
    const { v, sock, vmDir } = await vmm({ ECHO_GUEST_EXIT_AFTER_MS: '300' });
    await api(sock, 'PUT', 'vm.create', vmConfig(vmDir));
    await api(sock, 'PUT', 'vm.boot');
    expect(await v.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(sock)).toBe(false);
  });

  it('fault knobs: API 500, API hang, crash after boot, exit at start', async () => {
    const a = await vmm({ CH_SIM_API_FAIL: 'vm.boot', CH_SIM_API_HANG: 'vm.counters' });
    await api(a.sock, 'PUT', 'vm.create', vmConfig(a.vmDir));
    expect((await api(a.sock, 'PUT', 'vm.boot')).status).toBe(500);
    await expect(api(a.sock, 'GET', 'vm.counters', undefined, 300)).rejects.toThrow(/no answer/);
    const b = await vmm({ CH_SIM_CRASH_AFTER_BOOT_MS: '200' });
    await api(b.sock, 'PUT', 'vm.create', vmConfig(b.vmDir));
    await api(b.sock, 'PUT', 'vm.boot');
    expect(await b.v.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const c = await vmm({ CH_SIM_EXIT_AT_START: '3' });
    expect((await c.v.exited).code).toBe(3);
  });

  it('--api-socket fd=N and --event-monitor fd=N use inherited descriptors', async () => {
    const sock = join(dir, `fd${n++}.sock`);
    const ev = join(dir, `fdev${n}`);
    // An inherited listening socket on fd 3 and an event file on fd 4, as a launcher would pass them.
    const py = `import os,socket,sys
s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8); os.dup2(s.fileno(),3); os.set_inheritable(3,True)
f=os.open(sys.argv[2],os.O_WRONLY|os.O_CREAT,0o600); os.dup2(f,4); os.set_inheritable(4,True)
os.execv(sys.argv[3],[sys.argv[3],'--api-socket','fd=3','--event-monitor','fd=4'])`;
    const v = start('/usr/bin/python3', ['-c', py, sock, ev, tools.simCloudHypervisor], { TMPDIR: guestTmp });
    vmms.push(v);
    await waitFor('the VMM to answer on the inherited socket', () => existsSync(ev) && readFileSync(ev, 'utf8').includes('starting'));
    expect((await api(sock, 'GET', 'vmm.ping')).status).toBe(200);
    await api(sock, 'PUT', 'vmm.shutdown');
    expect((await v.exited).code).toBe(0);
    expect(readFileSync(ev, 'utf8')).toMatch(/"event": "shutdown"/);
  });

  it('command line: unknown flag, existing API socket, no OpenAPI document', async () => {
    const u = start(tools.simCloudHypervisor, ['--frobnicate']);
    expect((await u.exited).code).toBe(2);
    expect(u.stderr()).toMatch(/^error: unexpected argument '--frobnicate' found/);
    const taken = join(dir, 'taken.sock');
    writeFileSync(taken, '');
    const t = start(tools.simCloudHypervisor, ['--api-socket', taken]);
    expect((await t.exited).code).toBe(1);
    expect(t.stderr()).toMatch(/Address already in use/);
    const o = start(tools.simCloudHypervisor, ['--api-socket', join(dir, 'o.sock')], { CH_SIM_OPENAPI: '/nonexistent.yaml' });
    expect((await o.exited).code).toBe(1);
    expect(o.stderr()).toMatch(/refusing to start: CH_SIM_OPENAPI=\/nonexistent.yaml: no such file/);
  });
});
