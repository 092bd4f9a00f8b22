// Builds and runs the Go ttrpc peer (peer/*.go) against Debian's Go ttrpc 1.1 or trixie's 1.2,
// in GOPATH mode with only the Debian gocode trees (no network). Used by test/interop/ttrpc.test.ts
// and bench/ttrpc.mjs.
import { spawn, execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..', '..');
const depsDir = process.env.KATA_TS_DEPS ?? join(repoRoot, '.deps');
export const goBin = '/usr/bin/go';
export const binDir = join(repoRoot, 'test', 'interop', 'bin');

/** GOPATH trees per ttrpc version; 1.2 shadows the 1.1 package of /usr/share/gocode. */
export const gocode = {
  '1.1': ['/usr/share/gocode'],
  '1.2': [join(depsDir, 'gocode-ttrpc12', 'usr', 'share', 'gocode'), '/usr/share/gocode'],
};

/** Why the Go peer can't be built here, or undefined. */
export function goMissing(version) {
  if (!existsSync(goBin)) return `Go is not installed (${goBin}); run .ci/setup`;
  for (const root of gocode[version]) {
    if (!existsSync(join(root, 'src', 'github.com', 'containerd', 'ttrpc'))) return `Go ttrpc ${version} source missing under ${root}; run .ci/setup`;
  }
  return undefined;
}

/** Builds test/interop/bin/ttrpc-peer-<version> (gitignored) and returns its path. */
export async function buildPeer(version) {
  const why = goMissing(version);
  if (why) throw new Error(why);
  mkdirSync(binDir, { recursive: true });
  const out = join(binDir, `ttrpc-peer-${version}`);
  const gopath = mkdtempSync(join(tmpdir(), 'ttrpc-peer-gopath-'));
  try {
    const pkg = join(gopath, 'src', 'kata-ts', 'ttrpc-peer');
    mkdirSync(pkg, { recursive: true });
    for (const f of readdirSync(join(here, 'peer'))) if (f.endsWith('.go')) cpSync(join(here, 'peer', f), join(pkg, f));
    const env = {
      ...process.env,
      GOPATH: [gopath, ...gocode[version]].join(':'),
      GO111MODULE: 'off',
      GOFLAGS: '',
      GOPROXY: 'off',
      GOCACHE: process.env.GOCACHE ?? join(tmpdir(), 'kata-ts-gocache'),
    };
    const args = ['build', '-o', out];
    if (version === '1.2') args.push('-tags', 'ttrpc12');
    args.push('.');
    await promisify(execFile)(goBin, args, { cwd: pkg, env, maxBuffer: 1 << 20 }).catch((err) => {
      throw new Error(`go build of the ttrpc ${version} peer failed: ${err.stderr || err.message}`);
    });
  } finally {
    rmSync(gopath, { recursive: true, force: true });
  }
  return out;
}

/** Starts `peer -mode server` on a socket path; resolves once it listens. */
export function startGoServer(bin, socket) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, ['-mode', 'server', '-socket', socket], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    proc.stderr.on('data', (d) => (err += d));
    proc.once('exit', (code) => reject(new Error(`Go ttrpc server exited (${code}): ${err}`)));
    proc.stdout.once('data', () => {
      proc.removeAllListeners('exit');
      const exited = new Promise((r) => proc.once('exit', r));
      resolve({
        pid: proc.pid,
        stop: async () => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
          await exited;
        },
      });
    });
  });
}

/** Runs the peer to completion and returns its stdout (e.g. the JSON of `-mode client`). */
export async function runGoPeer(bin, args, timeoutMs = 60_000) {
  const { stdout } = await promisify(execFile)(bin, args, { timeout: timeoutMs, maxBuffer: 16 << 20 });
  return stdout;
}
