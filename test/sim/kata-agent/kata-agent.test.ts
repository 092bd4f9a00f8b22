// The agent simulator as the runtime sees it: booted by the cloud-hypervisor simulator with the
// real virtiofsd, reached over hybrid vsock with ttrpc, running busybox containers with runc.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Code, StatusError } from 'ttrpc-ts';
import { google, grpc } from '../../../proto/index.js';
import { missing, tools } from '../../env.js';
import { guestMountDir } from '../guest.js';
import { alive, api, dialVsockRetry, simLeftovers, start, waitFor, type Started } from '../testkit.js';

const skip = missing(tools.simCloudHypervisor, tools.simKataAgent, tools.virtiofsd, tools.runc, tools.busybox);
if (skip) console.warn(`skipping kata-agent simulator tests: ${skip} (npm run build)`);

const guestShared = '/run/kata-containers/shared/containers/';
let dir: string;
let shared: string;
let vmm: Started;
let virtiofsd: ChildProcess;
let client: Client;
let apiSock: string;
let guestTmp: string;

function rootfs(cid: string): string {
  const r = join(shared, cid, 'rootfs');
  mkdirSync(join(r, 'bin'), { recursive: true });
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'etc']) mkdirSync(join(r, d), { recursive: true });
  copyFileSync(tools.busybox, join(r, 'bin', 'busybox'));
  execFileSync('chmod', ['755', join(r, 'bin', 'busybox')]);
  for (const a of ['sh', 'echo', 'cat', 'sleep', 'tty', 'stty', 'tail', 'head', 'ls', 'hostname', 'ip', 'true']) symlinkSync('busybox', join(r, 'bin', a));
  return `${guestShared}${cid}/rootfs`;
}

/** A spec like the one Kata sends after its guest rewrite (no network ns, no hooks, rootfs in the shared mount). */
function spec(cid: string, args: string[], terminal = false): grpc.ISpec {
  return {
    Version: '1.0.2',
    Process: { Terminal: terminal, User: { UID: 0, GID: 0 }, Args: args, Env: ['PATH=/bin', 'TERM=xterm'], Cwd: '/',
      Capabilities: { Bounding: ['CAP_KILL', 'CAP_CHOWN'], Effective: ['CAP_KILL', 'CAP_CHOWN'], Permitted: ['CAP_KILL', 'CAP_CHOWN'] },
      NoNewPrivileges: true, ...(terminal ? { ConsoleSize: { Height: 25, Width: 80 } } : {}) },
    Root: { Path: rootfs(cid), Readonly: false },
    Hostname: 'sim-pod',
    Mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    Linux: { Namespaces: [{ Type: 'pid' }, { Type: 'ipc' }, { Type: 'uts' }, { Type: 'mount' }], MaskedPaths: ['/proc/kcore'], ReadonlyPaths: ['/proc/sys'] },
  };
}

async function call<T>(method: string, req: object, reqT: { encode(m: any): { finish(): Uint8Array } }, resT?: { decode(b: Uint8Array): T }, service = 'grpc.AgentService'): Promise<T> {
  const out = await client.call(service, method, reqT.encode(req).finish());
  return resT ? resT.decode(out) : (undefined as T);
}
const E = google.protobuf.Empty;

async function fails(p: Promise<unknown>): Promise<StatusError> {
  const e = await p.then(() => undefined, (x) => x);
  expect(e).toBeInstanceOf(StatusError);
  return e as StatusError;
}

async function readAll(cid: string, execId: string, which: 'ReadStdout' | 'ReadStderr'): Promise<string> {
  let s = '';
  for (;;) {
    const r = await call(which, { containerId: cid, execId, len: 32768 }, grpc.ReadStreamRequest, grpc.ReadStreamResponse);
    if (r.data.length === 0) return s;
    s += Buffer.from(r.data).toString();
  }
}

async function createStart(cid: string, args: string[], terminal = false): Promise<void> {
  await call('CreateContainer', { containerId: cid, execId: cid, OCI: spec(cid, args, terminal) }, grpc.CreateContainerRequest);
  await call('StartContainer', { containerId: cid }, grpc.StartContainerRequest);
}
const wait = (cid: string, execId: string) => call('WaitProcess', { containerId: cid, execId }, grpc.WaitProcessRequest, grpc.WaitProcessResponse).then((r) => r.status);

describe.skipIf(!!skip)('kata-agent simulator', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-sim-test-'));
    shared = join(dir, 'shared');
    mkdirSync(shared);
    const fsSock = join(dir, 'virtiofsd.sock');
    virtiofsd = spawn(tools.virtiofsd, ['--socket-path', fsSock, '--shared-dir', shared, '--cache', 'auto', '--log-level', 'error'], { stdio: 'ignore' });
    await waitFor('virtiofsd', () => existsSync(fsSock));
    apiSock = join(dir, 'clh-api.sock');
    guestTmp = join(dir, 'tmp');
    mkdirSync(guestTmp);
    vmm = start(tools.simCloudHypervisor, ['--api-socket', apiSock], { CH_SIM_GUEST_CONSOLE: join(dir, 'console.log'), TMPDIR: guestTmp });
    await waitFor('API socket', () => existsSync(apiSock));
    const kernel = join(dir, 'vmlinux');
    writeFileSync(kernel, '');
    const vsock = join(dir, 'clh.sock');
    expect((await api(apiSock, 'PUT', 'vm.create', {
      payload: { kernel, cmdline: 'panic=1 quiet agent.log=debug' }, memory: { size: 2 ** 30, shared: true }, cpus: { boot_vcpus: 1, max_vcpus: 2 },
      fs: [{ tag: 'kataShared', socket: fsSock, num_queues: 1, queue_size: 1024 }], vsock: { cid: 3, socket: vsock },
      serial: { mode: 'Off' }, console: { mode: 'Off' },
    })).status).toBe(204);
    expect((await api(apiSock, 'PUT', 'vm.boot')).status).toBe(204);
    const conn = await dialVsockRetry(vsock, 1024, 20_000);
    client = new Client(conn.socket);
    conn.socket.resume();
  }, 60_000);

  afterAll(async () => {
    client?.close();
    if (vmm && vmm.child.exitCode === null) {
      await api(apiSock, 'PUT', 'vmm.shutdown').catch(() => {});
      await Promise.race([vmm.exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (vmm.child.exitCode === null) vmm.child.kill('SIGKILL');
    }
    if (virtiofsd && virtiofsd.exitCode === null) virtiofsd.kill('SIGKILL');
    await waitFor('guest cleanup', () => simLeftovers(guestTmp).length === 0, 10_000).catch(() => {});
    expect(simLeftovers(guestTmp)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('Health: Check answers SERVING, Version the agent version', async () => {
    const h = await call('Check', { service: '' }, grpc.CheckRequest, grpc.HealthCheckResponse, 'grpc.Health');
    expect(h.status).toBe(grpc.HealthCheckResponse.ServingStatus.SERVING);
    const v = await call('Version', {}, grpc.CheckRequest, grpc.VersionCheckResponse, 'grpc.Health');
    expect(v.agentVersion).toMatch(/^3\./);
  });

  it('methods it does not implement answer UNIMPLEMENTED "<name> method"', async () => {
    const e = await fails(client.call('grpc.AgentService', 'CopyFile', new Uint8Array()));
    expect(e).toMatchObject({ code: Code.UNIMPLEMENTED, message: 'CopyFile method' });
    expect(await fails(client.call('grpc.AgentService', 'NoSuchThing', new Uint8Array()))).toMatchObject({ code: Code.UNIMPLEMENTED, message: 'NoSuchThing method' });
    expect(await fails(client.call('grpc.Health', 'Watch', new Uint8Array()))).toMatchObject({ code: Code.UNIMPLEMENTED, message: 'Watch method' });
  });

  it('an unknown service is INVALID_ARGUMENT "<name> service does not exist" (ttrpc-rust), and the connection stays', async () => {
    const e = await fails(client.call('grpc.NoSuchService', 'Check', new Uint8Array()));
    expect(e).toMatchObject({ code: Code.INVALID_ARGUMENT, message: 'grpc.NoSuchService service does not exist' });
    await call('Check', { service: '' }, grpc.CheckRequest, grpc.HealthCheckResponse, 'grpc.Health');
  });

  it('CreateSandbox needs the virtio-fs device the VM really has', async () => {
    const bad = await fails(call('CreateSandbox', { sandboxId: 's', storages: [{ driver: 'virtio-fs', source: 'otherTag', fstype: 'virtiofs', mountPoint: guestShared }] }, grpc.CreateSandboxRequest));
    expect(bad.code).toBe(Code.INTERNAL);
    await call('CreateSandbox', { sandboxId: 'sandbox1', hostname: 'sim-pod', storages: [{ driver: 'virtio-fs', source: 'kataShared', fstype: 'virtiofs', mountPoint: guestShared }] }, grpc.CreateSandboxRequest);
    const details = await call('GetGuestDetails', { memBlockSize: true, memHotplugProbe: true }, grpc.GuestDetailsRequest, grpc.GuestDetailsResponse);
    expect(details.memBlockSizeBytes).toBe(128 * 2 ** 20);
  });

  it('rejects what the real agent rejects, with its codes', async () => {
    expect((await fails(call('StartContainer', { containerId: 'nope' }, grpc.StartContainerRequest))).code).toBe(Code.INVALID_ARGUMENT);
    expect((await fails(call('CreateContainer', { containerId: '', OCI: spec('x0', ['true']) }, grpc.CreateContainerRequest))).code).toBe(Code.INVALID_ARGUMENT);
    const outside = spec('x1', ['true']);
    outside.Root = { Path: '/elsewhere/rootfs' };
    expect((await fails(call('CreateContainer', { containerId: 'x1', OCI: outside }, grpc.CreateContainerRequest))).code).toBe(Code.INTERNAL);
    const badMount = spec('x3', ['true']);
    badMount.Mounts!.push({ destination: '/etc/hosts', type: 'bind', source: '/etc/hosts', options: ['rbind', 'ro'] });
    // A host path the runtime did not share does not exist in the guest.
    expect(await fails(call('CreateContainer', { containerId: 'x3', OCI: badMount }, grpc.CreateContainerRequest))).toMatchObject({ code: Code.INTERNAL, message: expect.stringContaining('/etc/hosts') });
    const shared = spec('x4', ['true']);
    writeFileSync(join(dir, 'shared', 'x4-hosts'), '127.0.0.1 localhost\n');
    shared.Mounts!.push({ destination: '/etc/hosts', type: 'bind', source: `${guestShared}x4-hosts`, options: ['rbind', 'ro'] });
    await call('CreateContainer', { containerId: 'x4', execId: 'x4', OCI: shared }, grpc.CreateContainerRequest);
    await call('RemoveContainer', { containerId: 'x4' }, grpc.RemoveContainerRequest);
    await call('CreateContainer', { containerId: 'x2', execId: 'x2', OCI: spec('x2', ['true']) }, grpc.CreateContainerRequest);
    expect((await fails(wait('x2', 'no-such-exec'))).code).toBe(Code.NOT_FOUND);
    await call('RemoveContainer', { containerId: 'x2' }, grpc.RemoveContainerRequest);
  });

  it('creates the container process at CreateContainer: a missing executable fails there, Stats works before Start (containerd TestContainerNoBinaryExists, TestRegressionIssue6429, TestContainerMetrics)', async () => {
    const guest = readdirSync(guestTmp).filter((e) => e.startsWith('ch-sim-guest-'))[0];
    const e = await fails(call('CreateContainer', { containerId: 'nb', execId: 'nb', OCI: spec('nb', ['notfound404']) }, grpc.CreateContainerRequest));
    expect(e).toMatchObject({ code: Code.INTERNAL, message: expect.stringContaining('executable file not found') });
    // Nothing of it is left: no runc state, no bundle, the id is free again, Start knows no such container.
    expect(existsSync(join(guestTmp, guest, 'runc', 'nb'))).toBe(false);
    expect(existsSync(join(guestTmp, guest, 'containers', 'nb'))).toBe(false);
    expect((await fails(call('StartContainer', { containerId: 'nb' }, grpc.StartContainerRequest))).code).toBe(Code.INVALID_ARGUMENT);

    await call('CreateContainer', { containerId: 'cs', execId: 'cs', OCI: spec('cs', ['sh', '-c', 'echo started; exit 7']) }, grpc.CreateContainerRequest);
    // Created, not running: the init exists (its pid in runc's state), the user's program has not run.
    const state = JSON.parse(readFileSync(join(guestTmp, guest, 'runc', 'cs', 'state.json'), 'utf8')) as { init_process_pid: number };
    expect(readFileSync(`/proc/${state.init_process_pid}/cmdline`, 'utf8')).toContain('init');
    const st = await call('StatsContainer', { containerId: 'cs' }, grpc.StatsContainerRequest, grpc.StatsContainerResponse);
    expect(st.cgroupStats?.pidsStats?.current).toBeGreaterThanOrEqual(1);
    const out = readAll('cs', 'cs', 'ReadStdout');
    const status = wait('cs', 'cs');
    await call('StartContainer', { containerId: 'cs' }, grpc.StartContainerRequest);
    // The exit status comes from the guest init that reaped the container.
    expect(await status).toBe(7);
    expect(await out).toBe('started\n');
    await call('RemoveContainer', { containerId: 'cs' }, grpc.RemoveContainerRequest);
    expect(existsSync(join(guestTmp, guest, 'runc', 'cs'))).toBe(false);

    // Removed before it ever started: the created init is killed and reaped.
    await call('CreateContainer', { containerId: 'cr', execId: 'cr', OCI: spec('cr', ['sleep', '100']) }, grpc.CreateContainerRequest);
    const pid = (JSON.parse(readFileSync(join(guestTmp, guest, 'runc', 'cr', 'state.json'), 'utf8')) as { init_process_pid: number }).init_process_pid;
    await call('RemoveContainer', { containerId: 'cr' }, grpc.RemoveContainerRequest);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(existsSync(join(guestTmp, guest, 'containers', 'cr'))).toBe(false);
  });

  it('runs a container in a user namespace (root mapped to uid 1000) although the host folders above its rootfs are 0750', async () => {
    const guest = readdirSync(guestTmp).filter((e) => e.startsWith('ch-sim-guest-'))[0];
    execFileSync('chmod', ['750', shared]);
    const us = spec('us', ['sh', '-c', 'cat /proc/self/uid_map; echo x > /tmp/w && echo wrote']);
    // Files owned by the mapped root, as containerd's remapped snapshot makes them.
    execFileSync('chown', ['-R', '1000:1000', join(shared, 'us', 'rootfs')]);
    us.Linux!.Namespaces!.push({ Type: 'user' });
    us.Linux!.UIDMappings = [{ ContainerID: 0, HostID: 1000, Size: 65536 }];
    us.Linux!.GIDMappings = [{ ContainerID: 0, HostID: 1000, Size: 65536 }];
    try {
      await call('CreateContainer', { containerId: 'us', execId: 'us', OCI: us }, grpc.CreateContainerRequest);
      const out = readAll('us', 'us', 'ReadStdout');
      const err = readAll('us', 'us', 'ReadStderr');
      await call('StartContainer', { containerId: 'us' }, grpc.StartContainerRequest);
      expect({ status: await wait('us', 'us'), err: await err }).toEqual({ status: 0, err: '' });
      expect((await out).split(/\s+/).filter(Boolean)).toEqual(['0', '1000', '65536', 'wrote']);
      await call('RemoveContainer', { containerId: 'us' }, grpc.RemoveContainerRequest);
      // The guest's rootfs bind is gone, the rootfs itself (with what the container wrote) is intact.
      expect(existsSync(join(guestMountDir(guest), 'us'))).toBe(false);
      expect(readFileSync(join(shared, 'us', 'rootfs', 'tmp', 'w'), 'utf8')).toBe('x\n');
    } finally {
      execFileSync('chmod', ['755', shared]);
    }
  });

  it('gives a container its own pid namespace although the runtime strips it from the spec, as the agent does (containerd TestUserNamespaces)', async () => {
    const s = spec('pidns', ['sh', '-c', 'echo $$']);
    s.Linux!.Namespaces = s.Linux!.Namespaces!.filter((n) => n.Type !== 'pid');
    await call('CreateContainer', { containerId: 'pidns', execId: 'pidns', OCI: s }, grpc.CreateContainerRequest);
    const out = readAll('pidns', 'pidns', 'ReadStdout');
    await call('StartContainer', { containerId: 'pidns' }, grpc.StartContainerRequest);
    expect(await wait('pidns', 'pidns')).toBe(0);
    expect(await out).toBe('1\n');
    await call('RemoveContainer', { containerId: 'pidns' }, grpc.RemoveContainerRequest);
  });

  it('runs a container with runc: stdout, stderr, stdin, real exit status, EOF after exit', async () => {
    await createStart('c1', ['sh', '-c', 'echo out; echo err >&2; read x; echo got $x; hostname; exit 3']);
    const out = readAll('c1', 'c1', 'ReadStdout');
    const err = readAll('c1', 'c1', 'ReadStderr');
    const n = await call('WriteStdin', { containerId: 'c1', execId: 'c1', data: Buffer.from('hi\n') }, grpc.WriteStreamRequest, grpc.WriteStreamResponse);
    expect(n.len).toBe(3);
    await call('CloseStdin', { containerId: 'c1', execId: 'c1' }, grpc.CloseStdinRequest);
    expect(await out).toBe('out\ngot hi\nsim-pod\n');
    expect(await err).toBe('err\n');
    expect(await wait('c1', 'c1')).toBe(3);
    await call('RemoveContainer', { containerId: 'c1' }, grpc.RemoveContainerRequest);
  });

  it('execs, signals (128+N), SIGTERM upgraded to SIGKILL for an init that ignores it, stats, pause/resume', async () => {
    await createStart('c2', ['sleep', '1000']);
    await call('ExecProcess', { containerId: 'c2', execId: 'e1', process: { Args: ['sh', '-c', 'echo in-exec; exit 5'], Env: ['PATH=/bin'], Cwd: '/', User: { UID: 0, GID: 0 } } }, grpc.ExecProcessRequest);
    expect(await readAll('c2', 'e1', 'ReadStdout')).toBe('in-exec\n');
    expect(await wait('c2', 'e1')).toBe(5);
    await call('ExecProcess', { containerId: 'c2', execId: 'e2', process: { Args: ['sleep', '1000'], Env: ['PATH=/bin'], Cwd: '/' } }, grpc.ExecProcessRequest);
    await call('SignalProcess', { containerId: 'c2', execId: 'e2', signal: 9 }, grpc.SignalProcessRequest);
    expect(await wait('c2', 'e2')).toBe(137);
    const stats = await call('StatsContainer', { containerId: 'c2' }, grpc.StatsContainerRequest, grpc.StatsContainerResponse);
    expect(stats.cgroupStats?.memoryStats?.usage?.usage).toBeGreaterThan(0);
    expect(stats.cgroupStats?.pidsStats?.current).toBeGreaterThanOrEqual(1);
    await call('PauseContainer', { containerId: 'c2' }, grpc.PauseContainerRequest);
    await call('ResumeContainer', { containerId: 'c2' }, grpc.ResumeContainerRequest);
    await call('UpdateContainer', { containerId: 'c2', resources: { Memory: { Limit: 256 * 2 ** 20 } } }, grpc.UpdateContainerRequest);
    await call('SignalProcess', { containerId: 'c2', execId: '', signal: 15 }, grpc.SignalProcessRequest);
    expect(await wait('c2', 'c2')).toBe(137);
    await call('RemoveContainer', { containerId: 'c2' }, grpc.RemoveContainerRequest);
    expect((await fails(wait('c2', 'c2'))).code).toBe(Code.INVALID_ARGUMENT);
  });

  it('quick execs started together each report their own status and output (their helper exits as soon as it says "created")', async () => {
    await createStart('quick', ['sleep', '1000']);
    const ids = Array.from({ length: 40 }, (_, i) => i);
    await Promise.all(ids.map((i) => call('ExecProcess', { containerId: 'quick', execId: `q${i}`, process: { Args: ['sh', '-c', `echo q${i}; exit ${i % 5}`], Env: ['PATH=/bin'], Cwd: '/' } }, grpc.ExecProcessRequest)));
    const got = await Promise.all(ids.map(async (i) => ({ out: await readAll('quick', `q${i}`, 'ReadStdout'), status: await wait('quick', `q${i}`) })));
    got.forEach((g, i) => expect(g).toEqual({ out: `q${i}\n`, status: i % 5 }));
    await call('RemoveContainer', { containerId: 'quick' }, grpc.RemoveContainerRequest);
  });

  it('an exec exits when it does: a background child holding stdout delays neither WaitProcess nor EOF (500 ms drain)', async () => {
    await createStart('bg', ['sleep', '1000']);
    const t0 = Date.now();
    await call('ExecProcess', { containerId: 'bg', execId: 'b1', process: { Args: ['sh', '-c', 'sleep 30 & echo hi; exit 3'], Env: ['PATH=/bin'], Cwd: '/' } }, grpc.ExecProcessRequest);
    const out = readAll('bg', 'b1', 'ReadStdout').then((s) => ({ s, ms: Date.now() - t0 }));
    const status = wait('bg', 'b1').then((s) => ({ s, ms: Date.now() - t0 }));
    const [o, w] = await Promise.all([out, status]);
    console.log(`background-child exec: WaitProcess after ${w.ms} ms, stdout EOF after ${o.ms} ms`);
    expect(w.s).toBe(3);
    expect(o.s).toBe('hi\n');
    expect(w.ms).toBeLessThan(2000);
    expect(o.ms).toBeLessThan(2500);
    // The background child lives on in the container until it is removed.
    const stats = await call('StatsContainer', { containerId: 'bg' }, grpc.StatsContainerRequest, grpc.StatsContainerResponse);
    expect(stats.cgroupStats?.pidsStats?.current).toBe(2);
    const child = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).find((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8') === 'sleep\x0030\x00' && /\/kata-ts-sim\/.*\/bg$/m.test(readFileSync(`/proc/${p}/cgroup`, 'utf8'));
      } catch { return false; }
    });
    expect(child).toBeDefined();
    await call('RemoveContainer', { containerId: 'bg' }, grpc.RemoveContainerRequest);
    expect(alive(Number(child))).toBe(false);
  });

  it('terminal processes: a pty, output through ReadStdout, TtyWinResize reaches the container', async () => {
    await createStart('c3', ['sh', '-c', 'tty; stty size; sleep 1; stty size'], true);
    let out = '';
    // Resize only once the first size was printed (sleep 1 follows it).
    while (!out.includes('25 80')) {
      const r = await call('ReadStdout', { containerId: 'c3', execId: 'c3', len: 32768 }, grpc.ReadStreamRequest, grpc.ReadStreamResponse);
      expect(r.data.length).toBeGreaterThan(0);
      out += Buffer.from(r.data).toString();
    }
    await call('TtyWinResize', { containerId: 'c3', execId: 'c3', row: 40, column: 120 }, grpc.TtyWinResizeRequest);
    out = (out + await readAll('c3', 'c3', 'ReadStdout')).replace(/\r/g, '');
    expect(out).toMatch(/^\/dev\/pts\/\d+\n25 80\n40 120\n$/);
    expect(await wait('c3', 'c3')).toBe(0);
    await call('RemoveContainer', { containerId: 'c3' }, grpc.RemoveContainerRequest);
    await createStart('c3b', ['sleep', '1000']);
    await call('ExecProcess', { containerId: 'c3b', execId: 't1', process: { Terminal: true, ConsoleSize: { Height: 30, Width: 100 }, Args: ['sh', '-c', 'tty; stty size; read x; echo got $x; exit 4'], Env: ['PATH=/bin'], Cwd: '/' } }, grpc.ExecProcessRequest);
    const execOut = readAll('c3b', 't1', 'ReadStdout');
    await call('WriteStdin', { containerId: 'c3b', execId: 't1', data: Buffer.from('typed\n') }, grpc.WriteStreamRequest, grpc.WriteStreamResponse);
    expect(await wait('c3b', 't1')).toBe(4);
    // The pty echoes what was typed, as a terminal does: as soon as it is typed, so anywhere before the answer.
    const echoed = (await execOut).replace(/\r/g, '');
    expect(echoed.replace(/^typed\n/m, '')).toMatch(/^\/dev\/pts\/\d+\n30 100\ngot typed\n$/);
    await call('RemoveContainer', { containerId: 'c3b' }, grpc.RemoveContainerRequest);
  });

  it('a dropped connection abandons its calls only: containers live on, a new connection sees them', async () => {
    await createStart('c6', ['sh', '-c', 'read x; echo after $x']);
    const pending = call('ReadStdout', { containerId: 'c6', execId: 'c6', len: 100 }, grpc.ReadStreamRequest, grpc.ReadStreamResponse).catch((e) => e);
    await new Promise((r) => setTimeout(r, 100));
    client.close();
    expect(await pending).toBeInstanceOf(Error);
    const conn = await dialVsockRetry(join(dir, 'clh.sock'), 1024);
    client = new Client(conn.socket);
    conn.socket.resume();
    await call('WriteStdin', { containerId: 'c6', execId: 'c6', data: Buffer.from('reconnect\n') }, grpc.WriteStreamRequest, grpc.WriteStreamResponse);
    expect(await readAll('c6', 'c6', 'ReadStdout')).toBe('after reconnect\n');
    expect(await wait('c6', 'c6')).toBe(0);
    await call('RemoveContainer', { containerId: 'c6' }, grpc.RemoveContainerRequest);
  });

  it('reports a real OOM kill (memory cgroup limit) through GetOOMEvent', async () => {
    const oomSpec = spec('c5', ['tail', '/dev/zero']);
    oomSpec.Linux!.Resources = { Memory: { Limit: 16 * 2 ** 20 } };
    await call('CreateContainer', { containerId: 'c5', execId: 'c5', OCI: oomSpec }, grpc.CreateContainerRequest);
    const oom = call('GetOOMEvent', {}, grpc.GetOOMEventRequest, grpc.OOMEvent);
    await call('StartContainer', { containerId: 'c5' }, grpc.StartContainerRequest);
    expect(await wait('c5', 'c5')).toBe(137);
    expect((await oom).containerId).toBe('c5');
    await call('RemoveContainer', { containerId: 'c5' }, grpc.RemoveContainerRequest);
  });

  it('DestroySandbox kills every container and ends a pending GetOOMEvent with an error', async () => {
    await createStart('c4', ['sleep', '1000']);
    const oom = fails(call('GetOOMEvent', {}, grpc.GetOOMEventRequest, grpc.OOMEvent));
    await call('DestroySandbox', {}, grpc.DestroySandboxRequest);
    expect((await oom).code).not.toBe(Code.OK);
    expect(readdirSync(guestTmp).filter((e) => e.startsWith('ch-sim-guest-'))).toHaveLength(1);
    const guest = readdirSync(guestTmp).filter((e) => e.startsWith('ch-sim-guest-'))[0];
    expect(existsSync(join('/sys/fs/cgroup/freezer/kata-ts-sim', guest, 'c4'))).toBe(false);
    expect(readdirSync(join(guestTmp, guest, 'containers'))).toEqual([]);
  });
});

describe.skipIf(!!skip)('kata-agent simulator when its VMM is SIGKILLed', () => {
  it('kills and deletes its containers and removes every trace', async () => {
    const d = mkdtempSync(join(tmpdir(), 'agent-sim-kill-'));
    const tmp = join(d, 'tmp');
    mkdirSync(tmp);
    const sh = join(d, 'shared');
    mkdirSync(sh);
    const fsSock = join(d, 'virtiofsd.sock');
    const fsd = spawn(tools.virtiofsd, ['--socket-path', fsSock, '--shared-dir', sh, '--log-level', 'error'], { stdio: 'ignore' });
    try {
      await waitFor('virtiofsd', () => existsSync(fsSock));
      const sock = join(d, 'api.sock');
      const v = start(tools.simCloudHypervisor, ['--api-socket', sock], { TMPDIR: tmp });
      await waitFor('API socket', () => existsSync(sock));
      writeFileSync(join(d, 'k'), '');
      await api(sock, 'PUT', 'vm.create', { payload: { kernel: join(d, 'k') }, memory: { size: 2 ** 30, shared: true },
        fs: [{ tag: 'kataShared', socket: fsSock, num_queues: 1, queue_size: 1024 }], vsock: { cid: 3, socket: join(d, 'clh.sock') }, console: { mode: 'Off' } });
      await api(sock, 'PUT', 'vm.boot');
      const conn = await dialVsockRetry(join(d, 'clh.sock'), 1024, 20_000);
      const c = new Client(conn.socket);
      conn.socket.resume();
      const saved = shared;
      shared = sh;
      const prev = client;
      client = c;
      try {
        await call('CreateSandbox', { sandboxId: 'k', storages: [{ driver: 'virtio-fs', source: 'kataShared', fstype: 'virtiofs', mountPoint: guestShared }] }, grpc.CreateSandboxRequest);
        await createStart('k1', ['sleep', '1000']);
      } finally { client = prev; shared = saved; }
      const guest = readdirSync(tmp)[0];
      const procs = readFileSync(join('/sys/fs/cgroup/freezer/kata-ts-sim', guest, 'k1', 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
      expect(procs.length).toBeGreaterThan(0);
      v.child.kill('SIGKILL');
      await v.exited;
      c.close();
      await waitFor('the guest to clean up', () => simLeftovers(tmp).length === 0, 15_000);
      for (const p of procs) expect(alive(p)).toBe(false);
    } finally {
      fsd.kill('SIGKILL');
      rmSync(d, { recursive: true, force: true });
    }
  }, 60_000);
});
