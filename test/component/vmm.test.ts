// The VM layer against the cloud-hypervisor simulator (launched exactly like the real binary) and
// the real virtiofsd: start/boot/info/resize/counters/stop and every failure path, each checked
// to leave no process, mount, socket or directory behind.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'undici';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, pathsUnder, type KataConfig, type Logger, type Paths } from '../../config/index.js';
import { ClhClient } from '../../vmm/cloud-hypervisor/client.js';
import { CloudHypervisor, type CloudHypervisorOptions } from '../../vmm/cloud-hypervisor/hypervisor.js';
import { ClhApiError, VmmError, createSharedFs, destroySandboxLeftovers, type SharedFs } from '../../vmm/index.js';
import { isRunning } from '../../vmm/process.js';
import { mountsUnder } from '../../vmm/shared-fs.js';
import { missing, openApiPath, tools } from '../env.js';

const skip = missing(tools.simCloudHypervisor, tools.virtiofsd) ?? (process.getuid?.() !== 0 ? 'needs root (virtiofsd, mounts)' : undefined);
if (skip) console.warn(`skipping vmm component tests: ${skip}`);

interface Line { level: string; msg: string; f?: object }
function memLog(lines: Line[]): Logger {
  const w = (level: string) => (msg: string, f?: object) => void lines.push({ level, msg, f });
  return { debug: w('debug'), info: w('info'), warn: w('warn'), error: w('error') };
}

let root: string;
let paths: Paths;
let cfg: KataConfig;
let lines: Line[];
let log: Logger;
let sfs: SharedFs;
let started: number[];
let seq = 0;
let sandboxId: string;

function writeExec(name: string, text: string): string {
  const p = join(root, name);
  writeFileSync(p, text);
  chmodSync(p, 0o755);
  return p;
}

function hv(o: Partial<CloudHypervisorOptions> & { faults?: Record<string, string> } = {}): CloudHypervisor {
  const h = new CloudHypervisor({
    sandboxId, config: cfg, paths, log, host: { cpus: 4, memoryBytes: 8 * 1024 ** 3 },
    env: { ...process.env, CH_SIM_OPENAPI: openApiPath, ...o.faults },
    ...o,
  });
  return h;
}

/** Nothing of this sandbox's VM is left: processes, sockets, the VM dir. */
async function expectNothingLeft(pids: number[]): Promise<void> {
  for (let i = 0; i < 100 && pids.some(isRunning); i++) await new Promise((r) => setTimeout(r, 20));
  expect(pids.filter(isRunning)).toEqual([]);
  expect(existsSync(paths.vmDir(sandboxId))).toBe(false);
}

/** Pids of the VMM and virtiofsd (parent and sandboxed child), from pids.json while it exists. */
function recordedPids(): number[] {
  const f = join(paths.vmDir(sandboxId), 'pids.json');
  if (!existsSync(f)) return [];
  const p = JSON.parse(readFileSync(f, 'utf8'));
  return [p['cloud-hypervisor']?.pid, p.virtiofsd?.pid, ...(p.virtiofsd?.children ?? [])].filter(Boolean);
}

describe.skipIf(skip)('cloud-hypervisor VM (simulator + real virtiofsd)', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'kata-ts-vmm-'));
    paths = pathsUnder(root);
    for (const f of ['vmlinux.container', 'kata-containers.img']) writeFileSync(join(root, f), 'dummy');
    writeFileSync(join(root, 'configuration.toml'), [
      '[hypervisor.clh]',
      `path = "${tools.simCloudHypervisor}"`,
      `kernel = "${join(root, 'vmlinux.container')}"`,
      `image = "${join(root, 'kata-containers.img')}"`,
      'default_memory = 512',
      `virtio_fs_daemon = "${tools.virtiofsd}"`,
      'virtio_fs_cache = "auto"',
      'virtio_fs_extra_args = ["--thread-pool-size=1", "--announce-submounts"]',
      '[agent.kata]', 'dial_timeout = 45',
      '[runtime]', 'create_container_timeout = 60',
    ].join('\n'));
    cfg = await loadConfig(join(root, 'configuration.toml'));
    return async () => {
      expect(mountsUnder(root)).toEqual([]);
      rmSync(root, { recursive: true, force: true });
    };
  });

  beforeEach(async () => {
    sandboxId = `sb${++seq}-${process.pid}`;
    lines = [];
    log = memLog(lines);
    sfs = createSharedFs({ sandboxId, paths, log });
    await sfs.setup();
    started = [];
  });

  afterEach(async () => {
    await sfs.teardown();
    expect(mountsUnder(paths.sharedSandboxDir(sandboxId))).toEqual([]);
    expect(existsSync(paths.sharedSandboxDir(sandboxId))).toBe(false);
    await expectNothingLeft(started);
  });

  it('creates, boots, reports info, resizes, counts, and stops leaving nothing', async () => {
    const h = hv();
    const t0 = Date.now();
    await h.start();
    const t1 = Date.now();
    started = recordedPids();
    expect(started.length).toBeGreaterThanOrEqual(2);
    const vfsPid = JSON.parse(readFileSync(join(paths.vmDir(sandboxId), 'pids.json'), 'utf8')).virtiofsd.pid as number;
    // --sandbox=namespace: the spawned virtiofsd forks the serving child; both must go at stop.
    const kids = readFileSync(`/proc/${vfsPid}/task/${vfsPid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
    expect(kids.length).toBeGreaterThanOrEqual(1);
    started.push(...kids);
    // Without --syslog virtiofsd logs to stderr, which lands in our logger.
    expect(lines.some((l) => (l.f as { process?: string } | undefined)?.process === 'virtiofsd' && l.msg !== 'started')).toBe(true);
    expect(h.pids().length).toBe(2);
    const vmDir = paths.vmDir(sandboxId);
    expect(h.agentAddress()).toEqual({ socketPath: join(vmDir, 'clh.sock'), port: 1024 });
    for (const s of ['clh-api.sock', 'virtiofsd.sock']) expect(existsSync(join(vmDir, s))).toBe(true);

    const c = new ClhClient(join(vmDir, 'clh-api.sock'));
    const info = await c.info({ timeoutMs: 10_000 });
    expect(info.state).toBe('Running');
    expect(info.config.fs?.[0]).toMatchObject({ tag: 'kataShared', socket: join(vmDir, 'virtiofsd.sock') });
    expect(info.config.memory).toMatchObject({ size: 512 * 1024 ** 2, shared: true });
    expect(info.config.vsock).toMatchObject({ cid: 3, socket: join(vmDir, 'clh.sock') });

    await h.resize(2, 1024 * 1024 ** 2);
    const after = await c.info({ timeoutMs: 10_000 });
    expect(after.config.cpus?.boot_vcpus).toBe(2);
    expect(after.config.memory?.size).toBeGreaterThanOrEqual(512 * 1024 ** 2);
    expect(typeof (await h.counters())).toBe('object');
    await c.close();

    const t2 = Date.now();
    await h.stop();
    console.log(`timing: start→Running ${t1 - t0} ms, stop ${Date.now() - t2} ms`);
    await h.stop(); // idempotent
    expect(await h.wait()).toMatchObject({ reason: 'stopped' });
    expect(h.pids()).toEqual([]);
    await expect(h.resize(1, 512 * 1024 ** 2)).rejects.toMatchObject({ code: 'VMM_STOPPED' });
    await expectNothingLeft(started);
  });

  it('binary missing → VMM_LAUNCH naming the path; virtiofsd stopped, VM dir removed', async () => {
    const h = hv({ config: { ...cfg, hypervisor: { ...cfg.hypervisor, path: join(root, 'no-such-clh') } } });
    const err = await h.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmmError);
    expect(err).toMatchObject({ code: 'VMM_LAUNCH', message: `cloud-hypervisor binary ${join(root, 'no-such-clh')} does not exist` });
    expect(await h.wait()).toMatchObject({ reason: 'stopped' });
    expect(lines.some((l) => l.msg === 'started' && (l.f as { process: string }).process === 'virtiofsd')).toBe(true);
    await expectNothingLeft(started);
  });

  it('debug and disable_seccomp reach the command line; a missing shared dir is named', async () => {
    const h = hv({ config: { ...cfg, hypervisor: { ...cfg.hypervisor, enable_debug: true, hypervisor_loglevel: 2, disable_seccomp: true } } });
    await h.start();
    started = recordedPids();
    const vmmPid = JSON.parse(readFileSync(join(paths.vmDir(sandboxId), 'pids.json'), 'utf8'))['cloud-hypervisor'].pid as number;
    const argv = readFileSync(`/proc/${vmmPid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    expect(argv.slice(-5)).toEqual(['--api-socket', join(paths.vmDir(sandboxId), 'clh-api.sock'), '-vv', '--seccomp', 'false']);
    await h.stop();
    await expectNothingLeft(started);

    const h2 = hv({ sharedDir: join(root, 'no-shared-dir') });
    await expect(h2.start()).rejects.toMatchObject({ code: 'VIRTIOFSD', message: expect.stringContaining('no-shared-dir does not exist') });
    expect(existsSync(paths.vmDir(sandboxId))).toBe(false);
  });

  it('binary not executable → VMM_LAUNCH', async () => {
    const p = join(root, 'clh-noexec');
    writeFileSync(p, '#!/bin/sh\n');
    const h = hv({ config: { ...cfg, hypervisor: { ...cfg.hypervisor, path: p } } });
    await expect(h.start()).rejects.toMatchObject({ code: 'VMM_LAUNCH', message: `cloud-hypervisor binary ${p} is not executable` });
    await expectNothingLeft(started);
  });

  it('API socket never appearing → VMM_LAUNCH after the deadline, process killed', async () => {
    const p = writeExec('clh-silent', '#!/bin/sh\nexec sleep 60\n');
    const h = hv({ config: { ...cfg, hypervisor: { ...cfg.hypervisor, path: p } }, timeouts: { apiReadyMs: 300, stopMs: 200 } });
    const err = await h.start().catch((e: unknown) => e as VmmError);
    expect(err).toMatchObject({ code: 'VMM_LAUNCH' });
    expect((err as Error).message).toMatch(/did not create its API socket .*clh-api\.sock within 300 ms/);
    started = lines.filter((l) => l.msg === 'started').map((l) => (l.f as { pid: number }).pid);
    await expectNothingLeft(started);
  });

  it('VMM exiting at start → VMM_LAUNCH with its status', async () => {
    const h = hv({ faults: { CH_SIM_EXIT_AT_START: '3' } });
    await expect(h.start()).rejects.toMatchObject({ code: 'VMM_LAUNCH', message: expect.stringMatching(/cloud-hypervisor \(pid \d+\) exited with status 3 before its API socket/) });
    expect(await h.wait()).toMatchObject({ reason: 'vmm-exited' });
    started = lines.filter((l) => l.msg === 'started').map((l) => (l.f as { pid: number }).pid);
    await expectNothingLeft(started);
  });

  it('API answering 500 on vm.boot → ClhApiError with status, endpoint and messages', async () => {
    const h = hv({ faults: { CH_SIM_API_FAIL: 'vm.boot' } });
    const err = (await h.start().catch((e: unknown) => e)) as ClhApiError;
    expect(err).toBeInstanceOf(ClhApiError);
    expect(err).toMatchObject({ code: 'VMM_API', status: 500, endpoint: 'vm.boot' });
    expect(err.messages.length).toBeGreaterThan(0);
    started = lines.filter((l) => l.msg === 'started').map((l) => (l.f as { pid: number }).pid);
    await expectNothingLeft(started);
  });

  it('VMM dying after boot → wait() gives vmm-exited, everything else stopped', async () => {
    const h = hv({ faults: { CH_SIM_CRASH_AFTER_BOOT_MS: '300' } });
    await h.start();
    started = recordedPids();
    const exit = await h.wait();
    if (!/killed by SIGKILL/.test(exit.detail)) console.log(exit, lines.map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.f)}`).join('\n'));
    expect(exit.reason).toBe('vmm-exited');
    expect(exit.detail).toMatch(/cloud-hypervisor \(pid \d+\) was killed by SIGKILL/);
    expect(lines.some((l) => l.level === 'error' && /cloud-hypervisor .* killed by SIGKILL; stopping the VM/.test(l.msg))).toBe(true);
    await expectNothingLeft(started);
  });

  it('guest power-off (VMM exits 0) → wait() gives guest-shutdown, everything else stopped', async () => {
    const h = hv();
    await h.start();
    started = recordedPids();
    const api = new Client('http://localhost', { socketPath: join(paths.vmDir(sandboxId), 'clh-api.sock') });
    const res = await api.request({ path: '/api/v1/vm.power-button', method: 'PUT', body: '' });
    expect(res.statusCode).toBe(204);
    await res.body.dump();
    await api.close().catch(() => {});
    const exit = await h.wait();
    expect(exit).toMatchObject({ reason: 'guest-shutdown' });
    expect(exit.detail).toMatch(/cloud-hypervisor \(pid \d+\) exited with status 0 \(the guest powered off\)/);
    await expectNothingLeft(started);
  });

  it('virtiofsd dying → wait() gives virtiofsd-exited, VMM shut down', async () => {
    const h = hv();
    await h.start();
    started = recordedPids();
    const vfs = JSON.parse(readFileSync(join(paths.vmDir(sandboxId), 'pids.json'), 'utf8')).virtiofsd.pid;
    process.kill(vfs, 'SIGKILL');
    const exit = await h.wait();
    expect(exit).toMatchObject({ reason: 'virtiofsd-exited' });
    expect(exit.detail).toMatch(/virtiofsd \(pid \d+\) was killed by SIGKILL/);
    await expectNothingLeft(started);
  });

  it('start aborted by its signal → VMM_ABORTED, nothing left', async () => {
    const ac = new AbortController();
    const h = hv({ faults: { CH_SIM_API_HANG: 'vm.boot' }, timeouts: { apiMs: 5000, bootMs: 10_000, stopMs: 300 } });
    setTimeout(() => ac.abort(), 500);
    await expect(h.start(ac.signal)).rejects.toMatchObject({ code: 'VMM_ABORTED' });
    started = lines.filter((l) => l.msg === 'started').map((l) => (l.f as { pid: number }).pid);
    await expectNothingLeft(started);
  });

  it('destroySandboxLeftovers kills recorded processes, unmounts and removes dirs (idempotent)', async () => {
    const h = hv();
    await h.start();
    started = recordedPids();
    await destroySandboxLeftovers(sandboxId, paths, log);
    expect(started.filter(isRunning)).toEqual([]);
    expect(existsSync(paths.sharedSandboxDir(sandboxId))).toBe(false);
    expect(mountsUnder(root).filter((m) => m.includes(sandboxId))).toEqual([]);
    await destroySandboxLeftovers(sandboxId, paths, log);
    expect((await h.wait()).reason).toBe('vmm-exited');
    mkdirSync(paths.sharedSandboxDir(sandboxId), { recursive: true }); // for afterEach's teardown
  });
});
