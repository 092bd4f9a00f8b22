// agent-client against the kata-agent simulator, reached the way the shim reaches a real guest:
// the cloud-hypervisor simulator boots a "VM" (real virtiofsd for the shared dir), the client
// dials hybrid vsock while the guest boots, and every call runs for real (runc + busybox).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code } from 'ttrpc-ts';
import {
  AgentClosedError, AgentError, dialAgent, pumpInput, pumpOutput, sharedFsStorage, toGuestProcess, toGuestResources, toGuestSpec,
  type AgentClient,
} from '../../agent-client/index.js';
import { types } from '../../proto/index.js';
import { missing, tools } from '../env.js';
import { api, simLeftovers, start, waitFor, type Started } from '../sim/testkit.js';

const skip = missing(tools.simCloudHypervisor, tools.simKataAgent, tools.virtiofsd, tools.runc, tools.busybox);
if (skip) console.warn(`agent-client component tests skipped: ${skip} (npm run build)`);

const BOOT_DELAY_MS = 400;
let dir: string;
let shared: string;
let vmm: Started;
let virtiofsd: ChildProcess;
let apiSock: string;
let guestTmp: string;
let guests: string[] = [];
let vsock: string;
let agent: AgentClient;
let dialMs = 0;
const closes: Error[] = [];

/** A busybox rootfs under the shared dir; returns the guest path of it. */
function rootfs(cid: string): string {
  const r = join(shared, cid, 'rootfs');
  mkdirSync(join(r, 'bin'), { recursive: true });
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'etc']) mkdirSync(join(r, d), { recursive: true });
  copyFileSync(tools.busybox, join(r, 'bin', 'busybox'));
  execFileSync('chmod', ['755', join(r, 'bin', 'busybox')]);
  for (const a of ['sh', 'echo', 'cat', 'sleep', 'stty', 'head', 'yes', 'hostname', 'id']) symlinkSync('busybox', join(r, 'bin', a));
  return `/run/kata-containers/shared/containers/${cid}/rootfs`;
}

/** A config.json as containerd/CRI would write it (host paths, hooks, network ns, seccomp ...). */
function ociSpec(args: string[], o: { terminal?: boolean } = {}): any {
  return {
    ociVersion: '1.1.0',
    process: {
      terminal: !!o.terminal, user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin', 'TERM=xterm'], cwd: '/',
      capabilities: { bounding: ['CAP_KILL', 'CAP_CHOWN'], effective: ['CAP_KILL', 'CAP_CHOWN'], permitted: ['CAP_KILL', 'CAP_CHOWN'] },
      noNewPrivileges: true, selinuxLabel: 'system_u:system_r:container_t:s0', ...(o.terminal ? { consoleSize: { height: 25, width: 80 } } : {}),
    },
    root: { path: 'rootfs', readonly: false },
    hostname: 'agent-client-pod',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    hooks: { prestart: [{ path: '/usr/bin/does-not-exist-in-the-guest' }] },
    annotations: { 'io.kubernetes.cri.container-type': 'container', 'cdi.k8s.io/x': 'vendor/x=1' },
    linux: {
      resources: { memory: { limit: 256 << 20 }, cpu: { shares: 512, cpus: '0-63' }, pids: { limit: 1000 }, devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network', path: '/var/run/netns/cni-x' }, { type: 'cgroup' }],
      seccomp: { defaultAction: 'SCMP_ACT_KILL' }, // would kill everything: must not reach the guest
      maskedPaths: ['/proc/kcore'], readonlyPaths: ['/proc/sys'], mountLabel: 'system_u:object_r:container_file_t:s0',
    },
  };
}

async function createStart(cid: string, args: string[], o: { terminal?: boolean } = {}): Promise<void> {
  const guestRootfs = rootfs(cid);
  const { spec, sandboxPidns } = toGuestSpec(ociSpec(args, o), { containerId: cid, guestRootfs, disableGuestSeccomp: true });
  await agent.createContainer({ containerId: cid, execId: cid, OCI: spec, sandboxPidns }, 60_000);
  await agent.startContainer(cid);
}

async function output(cid: string, execId: string, which: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (d) => chunks.push(d));
  await pumpOutput(agent, which, cid, execId, sink);
  return Buffer.concat(chunks).toString();
}

describe.skipIf(!!skip)('agent-client over the simulators', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-client-comp-'));
    shared = join(dir, 'shared');
    mkdirSync(shared);
    guestTmp = join(dir, 'tmp');
    mkdirSync(guestTmp);
    const fsSock = join(dir, 'virtiofsd.sock');
    virtiofsd = spawn(tools.virtiofsd, ['--socket-path', fsSock, '--shared-dir', shared, '--cache', 'auto', '--log-level', 'error'], { stdio: 'ignore' });
    await waitFor('virtiofsd', () => existsSync(fsSock));
    apiSock = join(dir, 'clh-api.sock');
    vmm = start(tools.simCloudHypervisor, ['--api-socket', apiSock], {
      CH_SIM_GUEST_CONSOLE: join(dir, 'console.log'), CH_SIM_BOOT_DELAY_MS: String(BOOT_DELAY_MS), KATA_AGENT_SIM_OOM: 'oom-victim@0',
      // the guest's private dir lands in our temp dir, so the leftover check sees only our VM
      TMPDIR: guestTmp,
    });
    await waitFor('API socket', () => existsSync(apiSock));
    const kernel = join(dir, 'vmlinux');
    writeFileSync(kernel, '');
    vsock = join(dir, 'clh.sock');
    expect((await api(apiSock, 'PUT', 'vm.create', {
      payload: { kernel, cmdline: 'panic=1 quiet' }, memory: { size: 2 ** 30, shared: true }, cpus: { boot_vcpus: 1, max_vcpus: 2 },
      fs: [{ tag: 'kataShared', socket: fsSock, num_queues: 1, queue_size: 1024 }], vsock: { cid: 3, socket: vsock },
      serial: { mode: 'Off' }, console: { mode: 'Off' },
    })).status).toBe(204);
    expect((await api(apiSock, 'PUT', 'vm.boot')).status).toBe(204);
    guests = readdirSync(guestTmp).filter((f) => f.startsWith('ch-sim-guest-'));
    expect(guests.length).toBe(1);
    const t0 = Date.now();
    agent = await dialAgent({ socketPath: vsock, port: 1024, timeoutMs: 30_000, consoleHint: join(dir, 'console.log') });
    dialMs = Date.now() - t0;
    agent.onClose((e) => closes.push(e));
  }, 90_000);

  afterAll(async () => {
    agent?.close();
    if (vmm && vmm.child.exitCode === null) {
      await api(apiSock, 'PUT', 'vmm.shutdown').catch(() => {});
      await Promise.race([vmm.exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (vmm.child.exitCode === null) vmm.child.kill('SIGKILL');
    }
    if (virtiofsd && virtiofsd.exitCode === null) virtiofsd.kill('SIGKILL');
    const mine = () => simLeftovers().filter((p) => guests.some((g) => p.endsWith(`/${g}`)));
    await waitFor('guest cleanup', () => mine().length === 0, 10_000).catch(() => {});
    expect(mine()).toEqual([]);
    expect(readdirSync(guestTmp)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
    expect(existsSync(dir)).toBe(false);
  }, 60_000);

  it('dials through the guest boot (CONNECT answered only once the agent listens)', () => {
    expect(dialMs).toBeGreaterThanOrEqual(BOOT_DELAY_MS - 50);
  });

  it('check and version', async () => {
    await agent.check();
    expect(await agent.version()).toEqual({ agentVersion: '3.32.0', grpcVersion: '0.8.4' });
  });

  it('network calls, guest details, date, CPU onlining', async () => {
    const iface = await agent.updateInterface({ device: 'eth0', name: 'eth0', mtu: 1500, hwAddr: '02:42:ac:11:00:02',
      IPAddresses: [{ family: types.IPFamily.v4, address: '10.88.0.5', mask: '16' }] });
    expect([iface.name, iface.mtu, iface.IPAddresses[0]?.address]).toEqual(['eth0', 1500, '10.88.0.5']);
    const routes = await agent.updateRoutes([{ dest: '', gateway: '10.88.0.1', device: 'eth0' }, { dest: '10.88.0.0/16', device: 'eth0', scope: 253 }]);
    expect(routes.map((r) => [r.dest, r.gateway, r.scope])).toEqual([['', '10.88.0.1', 0], ['10.88.0.0/16', '', 253]]);
    await agent.addArpNeighbors([{ toIPAddress: { address: '10.88.0.1' }, device: 'eth0', lladdr: '02:42:ac:11:00:01', state: 128 }]);
    await agent.setGuestDateTime(new Date());
    await agent.onlineCpuMem({ wait: false, nbCpus: 2, cpuOnly: true });
    const err = await agent.onlineCpuMem({ nbCpus: 5000 }).catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect([err.grpcCode, err.method]).toEqual([Code.INTERNAL, 'OnlineCPUMem']);
  });

  it('createSandbox with the shared-fs storage, then guest details', async () => {
    await agent.createSandbox({ hostname: 'agent-client-pod', dns: [], storages: [sharedFsStorage()], sandboxId: 'sbx1', sandboxPidns: false });
    const d = await agent.getGuestDetails();
    expect(d.memBlockSizeBytes).toBe(128 << 20);
    expect(d.agentDetails?.storageHandlers).toContain('virtio-fs');
  });

  it('a container runs from the rewritten spec; stdout arrives, exit status comes back', async () => {
    await createStart('c1', ['sh', '-c', 'echo hello from $(hostname); echo oops >&2; exit 3']);
    const [out, err] = await Promise.all([output('c1', 'c1'), output('c1', 'c1', 'stderr')]);
    expect(out).toBe('hello from agent-client-pod\n');
    expect(err).toBe('oops\n');
    expect(await agent.waitProcess('c1', 'c1')).toBe(3);
    await agent.removeContainer('c1');
  });

  it('stdin through pumpInput (EOF → CloseStdin)', async () => {
    await createStart('cat1', ['cat']);
    const out = output('cat1', 'cat1');
    await pumpInput(agent, 'cat1', 'cat1', Readable.from([Buffer.from('line one\n'), Buffer.from('line two\n')]));
    expect(await out).toBe('line one\nline two\n');
    expect(await agent.waitProcess('cat1', 'cat1')).toBe(0);
    await agent.removeContainer('cat1');
  });

  it('exec, signal (128+N), stats, update, pause/resume', async () => {
    await createStart('s1', ['sleep', '1000']);
    await agent.execProcess({ containerId: 's1', execId: 'e1', process: toGuestProcess({ args: ['id', '-u'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } }) });
    expect(await output('s1', 'e1')).toBe('0\n');
    expect(await agent.waitProcess('s1', 'e1')).toBe(0);
    const stats = await agent.statsContainer('s1');
    expect(stats.cgroupStats?.memoryStats?.usage?.usage).toBeGreaterThan(0);
    await agent.updateContainer('s1', toGuestResources({ memory: { limit: 512 << 20 }, cpu: { shares: 256, cpus: '0' }, pids: { limit: 10 } }));
    await agent.pauseContainer('s1');
    await agent.resumeContainer('s1');
    await agent.signalProcess('s1', '', 9);
    expect(await agent.waitProcess('s1', 's1')).toBe(137);
    await agent.removeContainer('s1', 10);
  });

  it('a terminal process: output through ReadStdout, TtyWinResize', async () => {
    await createStart('t1', ['sh', '-c', 'sleep 1; stty size'], { terminal: true });
    await new Promise((r) => setTimeout(r, 300));
    await agent.ttyWinResize('t1', 't1', 40, 132);
    const out = await output('t1', 't1');
    expect(out.trim()).toBe('40 132');
    expect(await agent.waitProcess('t1', 't1')).toBe(0);
    await agent.removeContainer('t1');
  });

  it('agent errors keep their code and method', async () => {
    const e1 = await agent.startContainer('nope').catch((e) => e);
    expect(e1).toBeInstanceOf(AgentError);
    expect([e1.code, e1.grpcCode, e1.method]).toEqual(['AGENT_RPC', Code.INVALID_ARGUMENT, 'StartContainer']);
    await createStart('w1', ['sleep', '1000']);
    const e2 = await agent.waitProcess('w1', 'no-such-exec').catch((e) => e);
    expect([e2.grpcCode, e2.method]).toEqual([Code.NOT_FOUND, 'WaitProcess']);
    await agent.removeContainer('w1', 5);
  });

  it('getOOMEvent returns the OOM-killed container id', async () => {
    expect(await agent.getOOMEvent()).toBe('oom-victim');
  });

  it('256 MiB of stdout arrives byte-exact with a slow reader, within 64 MiB of idle RSS', async () => {
    const size = 256 << 20;
    const line = Buffer.from('kata-ts agent-client stream 0123456789abcdefghijklmnopqrstuvwxyz\n');
    await createStart('big', ['sh', '-c', `yes '${line.toString().trimEnd()}' | head -c ${size}`]);
    globalThis.gc?.();
    const idle = process.memoryUsage().rss;
    let peak = idle;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
    const got = createHash('sha256');
    let n = 0;
    let writes = 0;
    // A slow reader: every 8th chunk waits 2 ms, and it buffers at most 64 KiB.
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _e, cb) {
        got.update(chunk);
        n += chunk.length;
        if (++writes % 8 === 0) setTimeout(cb, 2);
        else setImmediate(cb);
      },
    });
    const t0 = Date.now();
    await pumpOutput(agent, 'stdout', 'big', 'big', sink);
    const secs = (Date.now() - t0) / 1000;
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(n).toBe(size);
    const want = createHash('sha256');
    const block = Buffer.concat(Array(16384).fill(line));
    let left = size;
    while (left > 0) { const k = Math.min(left, block.length); want.update(block.subarray(0, k)); left -= k; }
    expect(got.digest('hex')).toBe(want.digest('hex'));
    const growthMiB = (peak - idle) / 2 ** 20;
    console.log(`256 MiB via ReadStdout: ${secs.toFixed(1)} s (${(256 / secs).toFixed(1)} MiB/s), RSS idle ${(idle / 2 ** 20).toFixed(0)} MiB, peak +${growthMiB.toFixed(1)} MiB`);
    expect(growthMiB).toBeLessThan(64);
    expect(await agent.waitProcess('big', 'big')).toBe(0);
    await agent.removeContainer('big');
  }, 300_000);

  it('destroySandbox ends the pending OOM poll; the connection closes; later calls fail AgentClosedError', async () => {
    await createStart('last', ['sleep', '1000']);
    const oom = agent.getOOMEvent().catch((e) => e);
    const wait = agent.waitProcess('last', 'last').catch((e) => e);
    await new Promise((r) => setTimeout(r, 100));
    await agent.destroySandbox();
    const [o, w] = await Promise.all([oom, wait]);
    expect(o instanceof AgentError || o instanceof AgentClosedError).toBe(true);
    expect(w instanceof AgentError || w instanceof AgentClosedError || typeof w === 'number').toBe(true);
    await waitFor('connection close', () => closes.length > 0, 5000);
    expect(closes.length).toBe(1);
    expect(closes[0]).toBeInstanceOf(AgentClosedError);
    await expect(agent.check()).rejects.toBeInstanceOf(AgentClosedError);
  });
});

describe.skipIf(!!skip)('agent-client: a guest whose agent never listens', () => {
  it('dialAgent gives up after dial_timeout with AgentDialError naming the console log', async () => {
    const d = mkdtempSync(join(tmpdir(), 'agent-client-dead-'));
    const tmp = join(d, 'tmp');
    mkdirSync(tmp);
    const apiPath = join(d, 'clh-api.sock');
    const console_ = join(d, 'console.log');
    const v = start(tools.simCloudHypervisor, ['--api-socket', apiPath], { CH_SIM_GUEST_NEVER_LISTENS: '1', CH_SIM_GUEST_CONSOLE: console_, TMPDIR: tmp });
    try {
      await waitFor('API socket', () => existsSync(apiPath));
      const kernel = join(d, 'vmlinux');
      writeFileSync(kernel, '');
      const sock = join(d, 'clh.sock');
      expect((await api(apiPath, 'PUT', 'vm.create', {
        payload: { kernel, cmdline: 'panic=1' }, memory: { size: 2 ** 30 }, cpus: { boot_vcpus: 1, max_vcpus: 1 },
        vsock: { cid: 3, socket: sock }, serial: { mode: 'Off' }, console: { mode: 'Off' },
      })).status).toBe(204);
      expect((await api(apiPath, 'PUT', 'vm.boot')).status).toBe(204);
      const t0 = Date.now();
      const err = await dialAgent({ socketPath: sock, port: 1024, timeoutMs: 1500, consoleHint: console_ }).catch((e) => e);
      const took = Date.now() - t0;
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe('AGENT_DIAL');
      expect(err.message).toContain(`hvsock://${sock}:1024`);
      expect(err.message).toContain(console_);
      expect(took).toBeGreaterThanOrEqual(1300);
      expect(took).toBeLessThan(5000);
    } finally {
      await api(apiPath, 'PUT', 'vmm.shutdown').catch(() => {});
      await Promise.race([v.exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (v.child.exitCode === null && v.child.signalCode === null) v.child.kill('SIGKILL');
      await waitFor('guest cleanup', () => readdirSync(tmp).length === 0, 10_000).catch(() => {});
      expect(readdirSync(tmp)).toEqual([]);
      rmSync(d, { recursive: true, force: true });
    }
  }, 60_000);
});
