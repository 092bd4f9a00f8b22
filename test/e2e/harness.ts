// A private containerd for end-to-end tests: its own root, state, sockets and log under a temp
// dir (never the system's), the kata-ts shim and simulators from dist/ on its PATH, Kata's clh
// config (rendered from the upstream template) pointing at the cloud-hypervisor simulator, and a
// locally built busybox image imported. Everything it starts it stops, by pid.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { busyboxImageName, buildBusyboxImage } from '../images/busybox.js';
import { kataClhConfigFor } from '../kata-config.js';
import { depsDir, distDir, tools } from '../env.js';
import { pruneVersionCache, VERSION_CACHE_DIR } from '../../shim/start.js';

export type ContainerdVersion = '1.6' | '1.7' | '2';
export const runtimeType = 'io.containerd.kata-ts.v2';
export const image = busyboxImageName;

export interface CtrResult { code: number; stdout: string; stderr: string }

const binaryFor: Record<ContainerdVersion, string> = {
  '1.6': tools.containerd16,
  '1.7': tools.containerd17,
  '2': tools.containerd2,
};

export interface ContainerdOptions {
  version: ContainerdVersion;
  /** Extra environment for containerd (and so for every shim it starts). */
  env?: Record<string, string>;
  /** Set KATA_CONF_FILE for the shims (default true); false to test other lookup paths. */
  kataConfFileEnv?: boolean;
  /** Kata config debug keys on. */
  debug?: boolean;
  /**
   * Enable containerd's CRI plugin with the `kata-clh-ts` handler registered as kata-deploy
   * registers it (runtime type, pod annotations, options.ConfigPath). Off by default: no kubelet here.
   */
  registerHandler?: boolean;
}

export class Containerd {
  readonly dir: string;
  readonly address: string;
  readonly ttrpcAddress: string;
  readonly namespace = 'kata-ts-test';
  readonly kataConfig: string;
  readonly logFile: string;
  private proc?: ChildProcess;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(readonly opts: ContainerdOptions) {
    // Short path: containerd's sockets and ours must stay under the 107-byte limit.
    this.dir = mkdtempSync('/tmp/kts-');
    this.address = join(this.dir, 'c.sock');
    this.ttrpcAddress = `${this.address}.ttrpc`;
    this.logFile = join(this.dir, 'containerd.log');
    try {
      this.writeConfigs(opts);
    } catch (err) {
      rmSync(this.dir, { recursive: true, force: true });
      throw err;
    }
    this.kataConfig = join(this.dir, 'configuration-clh.toml');
    this.env = {
      ...process.env,
      PATH: `${distDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
      ...(opts.kataConfFileEnv === false ? {} : { KATA_CONF_FILE: this.kataConfig }),
      ...opts.env,
    };
  }

  private writeConfigs(opts: ContainerdOptions): void {
    const assets = join(this.dir, 'assets');
    mkdirSync(assets);
    // The simulator only checks that the guest assets exist, as the real VMM does before boot.
    writeFileSync(join(assets, 'vmlinux.container'), 'not a kernel: kata-ts tests use the cloud-hypervisor simulator\n');
    writeFileSync(join(assets, 'kata-containers.img'), Buffer.alloc(4096));
    writeFileSync(join(this.dir, 'configuration-clh.toml'), kataClhConfigFor({
      vmm: tools.simCloudHypervisor,
      virtiofsd: tools.virtiofsd,
      kernel: join(assets, 'vmlinux.container'),
      image: join(assets, 'kata-containers.img'),
      debug: opts.debug,
    }));
    const v3 = opts.version === '2';
    const cri = opts.registerHandler ? '' : v3
      ? '"io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.grpc.v1.cri", "io.containerd.podsandbox.controller.v1.podsandbox"'
      : '"io.containerd.grpc.v1.cri"';
    const table = `plugins."${v3 ? 'io.containerd.cri.v1.runtime' : 'io.containerd.grpc.v1.cri'}".containerd.runtimes.kata-clh-ts`;
    const handler = opts.registerHandler ? [
      `[${table}]`,
      `  runtime_type = "${runtimeType}"`,
      '  privileged_without_host_devices = true',
      '  pod_annotations = ["io.katacontainers.*"]',
      `[${table}.options]`,
      `  ConfigPath = "${join(this.dir, 'configuration-clh.toml')}"`,
    ] : [];
    writeFileSync(join(this.dir, 'config.toml'), [
      `version = ${v3 ? 3 : 2}`,
      `root = "${this.dir}/root"`,
      `state = "${this.dir}/state"`,
      `disabled_plugins = [${cri}]`,
      '[grpc]',
      `  address = "${this.address}"`,
      '[ttrpc]',
      `  address = "${this.ttrpcAddress}"`,
      '[debug]',
      '  level = "debug"',
      ...handler,
      '',
    ].join('\n'));
  }

  /** Starts a private containerd of that version and imports the busybox image. */
  static async start(opts: ContainerdOptions): Promise<Containerd> {
    const c = new Containerd(opts);
    try {
      await c.launch();
      const tar = buildBusyboxImage(join(depsDir, 'images', 'busybox-oci.tar'));
      const r = await c.ctr(['images', 'import', tar]);
      if (r.code !== 0) throw new Error(`ctr images import failed: ${r.stderr}`);
      return c;
    } catch (err) {
      await c.stop();
      throw err;
    }
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  private async launch(): Promise<void> {
    const bin = binaryFor[this.opts.version];
    if (!existsSync(bin)) throw new Error(`containerd ${this.opts.version} not installed at ${bin} (run .ci/setup)`);
    rmSync(this.address, { force: true });
    const log = openSync(this.logFile, 'a');
    this.proc = spawn(bin, ['--config', join(this.dir, 'config.toml')], { env: this.env, stdio: ['ignore', log, log] });
    closeSync(log);
    const exited = new Promise<never>((_, reject) => this.proc!.once('exit', (code, sig) =>
      reject(new Error(`containerd ${this.opts.version} exited (${code ?? sig}); log: ${this.logFile}\n${this.logTail()}`))));
    exited.catch(() => {});
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (existsSync(this.address)) {
        const r = await this.ctr(['version']);
        if (r.code === 0) return;
      }
      await Promise.race([sleep(50), exited]);
    }
    throw new Error(`containerd ${this.opts.version} did not answer within 20 s; log: ${this.logFile}\n${this.logTail()}`);
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Runs ctr against this containerd; never throws for a non-zero exit. */
  ctr(args: string[], o: { input?: string | Buffer; timeoutMs?: number; maxBuffer?: number } = {}): Promise<CtrResult> {
    return new Promise((resolve) => {
      const child = execFile(tools.ctr, ['--address', this.address, '--namespace', this.namespace, ...args],
        { env: this.env, timeout: o.timeoutMs ?? 60_000, maxBuffer: o.maxBuffer ?? 256 * 1024 * 1024, encoding: 'buffer' },
        (err, stdout, stderr) => {
          const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
          resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
        });
      if (o.input !== undefined) child.stdin!.end(o.input);
      else child.stdin!.end();
    });
  }

  /** SIGKILLs containerd (shims keep running, as after a crash). */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  /** Starts the same containerd again on the same root and state. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  /**
   * Removes every task and container left in the namespace, stops containerd, removes its dir.
   * Idempotent.
   */
  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const tasks = await this.ctr(['tasks', 'ls', '-q']);
      for (const id of tasks.stdout.split('\n').filter(Boolean)) {
        await this.ctr(['tasks', 'kill', '-s', 'SIGKILL', '--all', id]);
        await this.ctr(['tasks', 'rm', '-f', id]);
      }
      const ctrs = await this.ctr(['containers', 'ls', '-q']);
      for (const id of ctrs.stdout.split('\n').filter(Boolean)) await this.ctr(['containers', 'rm', id]);
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, sleep(10_000)]);
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGKILL');
        await gone;
      }
    }
    await this.reapShims();
    // The shim caches each containerd's version by pid; this one is gone now.
    pruneVersionCache(VERSION_CACHE_DIR);
    // containerd leaves overlay snapshots mounted only while containers run; unmount stragglers.
    for (const m of mountsUnder(this.dir).reverse()) await run('umount', ['-l', m]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * A shim outlives containerd by design. After a failed test, any kata-ts shim still serving this
   * containerd is killed and its own `delete` cleans its sandbox (VM, virtiofsd, mounts), exactly
   * as containerd does for a shim that died.
   */
  private async reapShims(): Promise<void> {
    for (const shim of processesWith(`-address ${this.address} `)) {
      if (!shim.argv[0]?.endsWith('containerd-shim-kata-ts-v2')) continue;
      const flag = (name: string) => shim.argv[shim.argv.indexOf(name) + 1];
      const id = flag('-id');
      try {
        process.kill(shim.pid, 'SIGKILL');
      } catch {
        continue;
      }
      const bundle = join(this.dir, 'state', 'io.containerd.runtime.v2.task', this.namespace, id);
      await new Promise((resolve) => execFile(tools.shim,
        ['-namespace', this.namespace, '-address', this.address, '-publish-binary', binaryFor[this.opts.version], '-id', id, '-bundle', bundle, 'delete'],
        { cwd: existsSync(bundle) ? bundle : '/', env: this.env, timeout: 30_000 }, resolve));
    }
  }
}

/** Processes whose command line (NULs read as spaces) contains `text`. */
export function processesWith(text: string): { pid: number; argv: string[] }[] {
  const found: { pid: number; argv: string[] }[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let raw = '';
    try {
      raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (`${raw.replace(/\0/g, ' ')} `.includes(text)) found.push({ pid: Number(pid), argv: raw.split('\0').filter(Boolean) });
  }
  return found;
}

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => execFile(cmd, args, (err) => resolve(err ? 1 : 0)));
}

/** Mount points below a path, from /proc/self/mountinfo. */
export function mountsUnder(prefix: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' ')[4].replace(/\\040/g, ' '))
    .filter((m) => m === prefix || m.startsWith(`${prefix}/`));
}

/**
 * What a sandbox left behind: processes whose command line names the id, mounts and dirs in
 * Kata's host paths, and the shim socket. Empty when clean.
 */
export function leftovers(ids: string[]): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue;
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (ids.some((id) => cmd.includes(id)) && !cmd.includes('vitest')) found.push(`process ${pid}: ${cmd.trim()}`);
  }
  for (const id of ids) {
    for (const p of [`/run/vc/vm/${id}`, `/run/kata-containers/shared/sandboxes/${id}`, `/run/vc/sbs/${id}`]) {
      if (existsSync(p)) found.push(`path ${p}`);
      for (const m of mountsUnder(p)) found.push(`mount ${m}`);
    }
  }
  return found;
}

/** Waits until leftovers(ids) is empty (cleanup is asynchronous after ctr returns), or returns what is left. */
export async function settleLeftovers(ids: string[], timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let left = leftovers(ids);
  while (left.length && Date.now() < deadline) {
    await sleep(100);
    left = leftovers(ids);
  }
  return left;
}

/** A fresh container id that names this test run. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

export function symlinkTarget(p: string): string | undefined {
  try {
    return readlinkSync(p);
  } catch {
    return undefined;
  }
}
