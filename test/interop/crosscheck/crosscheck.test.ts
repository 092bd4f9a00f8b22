// Cross-checks our generated protobuf code against containerd's own Go types (Debian's
// golang-github-containerd-containerd-dev 1.6.20, built in GOPATH mode): Go encodes, we
// decode field for field; we encode, Go decodes and prints JSON that we compare.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { containerd, io, runtimeoptions, timestampFrom, toDate, TypeUrl } from '../../../proto/index.js';
import { missing, tools } from '../../env.js';

const here = dirname(fileURLToPath(import.meta.url));
const gocode = '/usr/share/gocode';
const skip = missing(tools.go, join(gocode, 'src/github.com/containerd/containerd/runtime/v2/task'));
if (skip) console.warn(`crosscheck: skipped: ${skip}`);

function run(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env: o.env, cwd: o.cwd, maxBuffer: 16 << 20, timeout: 300_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout));
    if (o.input !== undefined) child.stdin!.end(o.input);
  });
}

// The same values main.go's fixtures() holds.
const exitedAt = { seconds: 1_700_000_000, nanos: 123_456_789 };
const optionsValue = runtimeoptions.v1.Options.encode({
  typeUrl: 'io.containerd.kata-ts.v2', configPath: '/etc/kata-containers/configuration.toml',
}).finish();
const taskExit = { containerId: 'c1', id: 'exec-1', pid: 4242, exitStatus: 137, exitedAt };
const ours = {
  createTask: containerd.task.v2.CreateTaskRequest.encode({
    id: 'c1',
    bundle: '/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1',
    rootfs: [
      { type: 'overlay', source: 'overlay', options: ['index=off', 'workdir=/w', 'upperdir=/u', 'lowerdir=/l1:/l2'] },
      { type: 'bind', source: '/src', target: '/dst', options: ['rbind', 'ro'] },
    ],
    terminal: true, stdin: '/fifo/stdin', stdout: '/fifo/stdout', stderr: '/fifo/stderr',
    options: { type_url: TypeUrl.runtimeOptions, value: optionsValue },
  }).finish(),
  forward: containerd.services.events.ttrpc.v1.ForwardRequest.encode({
    envelope: {
      timestamp: { seconds: 1_700_000_001, nanos: 5000 }, namespace: 'k8s.io', topic: '/tasks/exit',
      event: { type_url: TypeUrl.taskExit, value: containerd.events.TaskExit.encode(taskExit).finish() },
    },
  }).finish(),
  taskExit: containerd.events.TaskExit.encode(taskExit).finish(),
  deleteResponse: containerd.task.v2.DeleteResponse.encode({ pid: 4242, exitStatus: 137, exitedAt }).finish(),
  metricsV1: io.containerd.cgroups.v1.Metrics.encode({
    pids: { current: 3, limit: 100 },
    cpu: { usage: { total: 2 ** 40, kernel: 2, user: 3, perCpu: [5, 6] } },
    memory: { cache: 7, rss: 8, totalInactiveFile: 9, usage: { limit: 2 ** 33, usage: 10, max: 11, failcnt: 12 } },
  }).finish(),
  metricsV2: io.containerd.cgroups.v2.Metrics.encode({
    pids: { current: 3, limit: 100 },
    cpu: { usageUsec: 2 ** 40, userUsec: 2, systemUsec: 3 },
    memory: { anon: 4, file: 5, inactiveFile: 6, usage: 7, usageLimit: 2 ** 33, swapUsage: 8 },
  }).finish(),
};

describe.skipIf(!!skip)('protobuf cross-check with containerd 1.6 Go types', () => {
  let dir = '';
  let bin = '';
  let fromGo: Record<string, Uint8Array> = {};

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crosscheck-'));
    await mkdir(join(dir, 'src', 'crosscheck'), { recursive: true });
    await copyFile(join(here, 'main.go'), join(dir, 'src', 'crosscheck', 'main.go'));
    bin = join(dir, 'crosscheck');
    const env = { ...process.env, GOPATH: `${dir}:${gocode}`, GO111MODULE: 'off', GOPROXY: 'off', GOFLAGS: '' };
    await run(tools.go, ['build', '-o', bin, '.'], { env, cwd: join(dir, 'src', 'crosscheck') });
    const out = JSON.parse(await run(bin, ['encode'])) as Record<string, string>;
    fromGo = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]));
  }, 300_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    expect(dir === '' || !existsSync(dir)).toBe(true);
  });

  it('decodes Go\'s CreateTaskRequest field for field', () => {
    const m = containerd.task.v2.CreateTaskRequest.decode(fromGo.createTask);
    expect(m.id).toBe('c1');
    expect(m.bundle).toBe('/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1');
    expect(m.rootfs.map((r) => ({ ...r }))).toEqual([
      { type: 'overlay', source: 'overlay', options: ['index=off', 'workdir=/w', 'upperdir=/u', 'lowerdir=/l1:/l2'] },
      { type: 'bind', source: '/src', target: '/dst', options: ['rbind', 'ro'] },
    ]);
    expect([m.terminal, m.stdin, m.stdout, m.stderr, m.checkpoint, m.parentCheckpoint])
      .toEqual([true, '/fifo/stdin', '/fifo/stdout', '/fifo/stderr', '', '']);
    expect(m.options?.type_url).toBe('runtimeoptions.v1.Options');
    const opts = runtimeoptions.v1.Options.decode(m.options!.value!);
    expect(opts.typeUrl).toBe('io.containerd.kata-ts.v2');
    expect(opts.configPath).toBe('/etc/kata-containers/configuration.toml');
  });

  it('decodes Go\'s TaskExit inside a 1.6 events Envelope', () => {
    const env = containerd.services.events.ttrpc.v1.ForwardRequest.decode(fromGo.forward).envelope!;
    expect(toDate(env.timestamp).getTime()).toBe(1_700_000_001_000);
    expect(env.timestamp?.nanos).toBe(5000);
    expect(env.namespace).toBe('k8s.io');
    expect(env.topic).toBe('/tasks/exit');
    expect(env.event?.type_url).toBe(TypeUrl.taskExit);
    const exit = containerd.events.TaskExit.decode(env.event!.value!);
    expect({ ...exit, exitedAt: { ...exit.exitedAt } }).toEqual(taskExit);
    // The 1.7+ name of the envelope reads the same bytes.
    const env17 = containerd.types.Envelope.decode(containerd.services.events.ttrpc.v1.Envelope.encode(env).finish());
    expect(env17.topic).toBe('/tasks/exit');
  });

  it('decodes Go\'s DeleteResponse', () => {
    const m = containerd.task.v2.DeleteResponse.decode(fromGo.deleteResponse);
    expect([m.pid, m.exitStatus, m.exitedAt?.seconds, m.exitedAt?.nanos]).toEqual([4242, 137, 1_700_000_000, 123_456_789]);
    expect(toDate(m.exitedAt).toISOString()).toBe('2023-11-14T22:13:20.123Z');
    expect(timestampFrom(toDate(m.exitedAt)).seconds).toBe(1_700_000_000);
  });

  it('decodes Go\'s cgroup v1 and v2 metrics (64-bit values as numbers)', () => {
    const v1 = io.containerd.cgroups.v1.Metrics.decode(fromGo.metricsV1);
    expect(v1.cpu?.usage?.total).toBe(2 ** 40);
    expect(v1.cpu?.usage?.perCpu).toEqual([5, 6]);
    expect([v1.memory?.cache, v1.memory?.rss, v1.memory?.totalInactiveFile]).toEqual([7, 8, 9]);
    expect({ ...v1.memory?.usage }).toEqual({ limit: 2 ** 33, usage: 10, max: 11, failcnt: 12 });
    const v2 = io.containerd.cgroups.v2.Metrics.decode(fromGo.metricsV2);
    expect([v2.cpu?.usageUsec, v2.memory?.usageLimit, v2.memory?.inactiveFile, v2.pids?.limit]).toEqual([2 ** 40, 2 ** 33, 6, 100]);
  });

  it('encodes exactly the bytes Go encodes', () => {
    for (const [name, bytes] of Object.entries(ours)) {
      expect(Buffer.from(bytes).toString('hex'), name).toBe(Buffer.from(fromGo[name]).toString('hex'));
    }
  });

  it('our encoding decodes in Go to the same values', async () => {
    const input = Object.fromEntries(Object.entries(ours).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    const got = JSON.parse(await run(bin, ['decode'], { input: JSON.stringify(input) }));
    expect(got.createTask).toMatchObject({
      id: 'c1', bundle: '/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1', terminal: true,
      stdin: '/fifo/stdin', stdout: '/fifo/stdout', stderr: '/fifo/stderr',
      rootfs: [
        { type: 'overlay', source: 'overlay', options: ['index=off', 'workdir=/w', 'upperdir=/u', 'lowerdir=/l1:/l2'] },
        { type: 'bind', source: '/src', target: '/dst', options: ['rbind', 'ro'] },
      ],
      options: { type_url: 'runtimeoptions.v1.Options', value: Buffer.from(optionsValue).toString('base64') },
    });
    expect(got.forward.envelope).toMatchObject({ timestamp: '2023-11-14T22:13:21.000005Z', namespace: 'k8s.io', topic: '/tasks/exit' });
    expect(got.forward.envelope.event.type_url).toBe('containerd.events.TaskExit');
    expect(got.taskExit).toEqual({ container_id: 'c1', id: 'exec-1', pid: 4242, exit_status: 137, exited_at: '2023-11-14T22:13:20.123456789Z' });
    expect(got.deleteResponse).toEqual({ pid: 4242, exit_status: 137, exited_at: '2023-11-14T22:13:20.123456789Z' });
    expect(got.metricsV1.cpu.usage).toMatchObject({ total: 2 ** 40, kernel: 2, user: 3, per_cpu: [5, 6] });
    expect(got.metricsV1.memory.usage).toMatchObject({ limit: 2 ** 33, usage: 10, max: 11, failcnt: 12 });
    expect(got.metricsV2.memory).toMatchObject({ anon: 4, file: 5, inactive_file: 6, usage: 7, usage_limit: 2 ** 33, swap_usage: 8 });
  });
});
