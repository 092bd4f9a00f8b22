// kata-ts under real containerd and ctr, with the cloud-hypervisor and kata-agent simulators as
// VMM and guest (named by the Kata config the harness writes). After every scenario nothing of
// the sandbox may be left: processes, mounts, Kata dirs, shim sockets.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Containerd, image, runtimeType, settleLeftovers, uniqueId } from './harness.js';
import { missing, tools } from '../env.js';
import { VERSION_CACHE_DIR, containerdVersion, pruneVersionCache } from '../../shim/start.js';

const run = ['run', '--rm', '--runtime', runtimeType];

function why(version: '1.6' | '1.7' | '2'): string | undefined {
  const bin = { '1.6': tools.containerd16, '1.7': tools.containerd17, '2': tools.containerd2 }[version];
  return missing(bin, tools.ctr, tools.shim, tools.simCloudHypervisor, tools.simKataAgent, tools.virtiofsd, tools.runc);
}

async function waitForStatus(c: Containerd, id: string, status: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await c.ctr(['task', 'ls']);
    const line = r.stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
    if (line?.includes(status)) return;
    if (Date.now() > deadline) throw new Error(`task ${id} not ${status} within ${timeoutMs} ms: ${line ?? '(absent)'}\n${c.logTail(40)}`);
    await sleep(100);
  }
}

async function expectClean(ids: string[]): Promise<void> {
  expect(await settleLeftovers(ids)).toEqual([]);
}

for (const version of ['1.6', '2'] as const) {
  const skip = why(version);
  describe.skipIf(skip)(`kata-ts on containerd ${version}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    let c: Containerd;
    beforeAll(async () => { c = await Containerd.start({ version }); });
    // Its containerd is gone now: `start`'s version cache entry for it goes too.
    afterAll(async () => { await c?.stop(); pruneVersionCache(VERSION_CACHE_DIR); });

    test('ctr run --rm: stdout, stderr and the exit code', async () => {
      const id = uniqueId('t1');
      const r = await c.ctr([...run, image, id, 'sh', '-c', 'echo out; echo err >&2; exit 7']);
      expect(r, c.logTail(60)).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n' });
      await expectClean([id]);
    });

    test('host bind mounts reach the container through the shared fs: a directory read-write, a file read-only', async () => {
      const id = uniqueId('bind');
      const dir = mkdtempSync(join(c.dir, 'hostdir-'));
      writeFileSync(join(dir, 'f'), 'from the host\n');
      const file = join(c.dir, `hostfile-${id}`);
      writeFileSync(file, 'read only\n');
      const r = await c.ctr([...run, '--mount', `type=bind,src=${dir},dst=/h,options=rbind:rw`, '--mount', `type=bind,src=${file},dst=/etc/ro-file,options=rbind:ro`,
        image, id, 'sh', '-c', 'cat /h/f /etc/ro-file; echo from the guest > /h/g; echo x > /etc/ro-file || echo refused']);
      expect(r, c.logTail(80)).toMatchObject({ code: 0, stdout: 'from the host\nread only\nrefused\n' });
      expect(readFileSync(join(dir, 'g'), 'utf8')).toBe('from the guest\n');
      expect(readFileSync(file, 'utf8')).toBe('read only\n');
      await expectClean([id]);
      // A source that does not exist is refused by name, and nothing is left.
      const id2 = uniqueId('bindmiss');
      const bad = await c.ctr([...run, '--mount', `type=bind,src=${dir}/nope,dst=/x,options=rbind`, image, id2, 'true']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(new RegExp(`bind mount /x of container ${id2}: source ${dir}/nope: ENOENT`));
      await c.ctr(['container', 'rm', id2]);
      await expectClean([id2]);
    });

    test('start answers in the newest form this containerd supports (task API v3 only on 2.x)', async () => {
      const v = await containerdVersion(c.address, 5000);
      expect(v).toMatch(version === '2' ? /^v?2\./ : /^v?1\.6\./);
      const id = uniqueId('api');
      expect((await c.ctr([...run, image, id, 'true'])).code).toBe(0);
      const calls = c.logTail(3000).split('\n').filter((l) => l.includes(`sandbox=${id}`) && l.includes('msg="task call"'));
      expect(calls.length).toBeGreaterThan(0);
      const want = version === '2' ? 'service=containerd.task.v3.Task' : 'service=containerd.task.v2.Task';
      expect(calls.every((l) => l.includes(want))).toBe(true);
      await expectClean([id]);
    });

    test('stdin reaches the container and EOF ends it', async () => {
      const id = uniqueId('cat');
      const r = await c.ctr([...run, image, id, 'cat'], { input: 'hello\n' });
      expect(r).toMatchObject({ code: 0, stdout: 'hello\n' });
      await expectClean([id]);
    });

    test('ctr run -d, exec exits 5, the task keeps running; ps, pause/resume, metrics, kill', async () => {
      const id = uniqueId('bg');
      const d = await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sh', '-c', 'while true; do sleep 0.1; done']);
      expect(d.code, d.stderr).toBe(0);
      try {
        await waitForStatus(c, id, 'RUNNING');
        const e = await c.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo in-exec; exit 5']);
        expect(e).toMatchObject({ code: 5, stdout: 'in-exec\n' });
        await waitForStatus(c, id, 'RUNNING');
        const ps = await c.ctr(['task', 'ps', id]);
        expect(ps.code, ps.stderr).toBe(0);
        expect(ps.stdout).toMatch(/^\s*\d+/m);
        expect((await c.ctr(['task', 'pause', id])).code).toBe(0);
        await waitForStatus(c, id, 'PAUSED');
        expect((await c.ctr(['task', 'resume', id])).code).toBe(0);
        await waitForStatus(c, id, 'RUNNING');
        const m = await c.ctr(['task', 'metrics', id]);
        expect(m.code, m.stderr).toBe(0);
        expect(m.stdout).toMatch(/memory/i);
        const k = await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        expect(k.code, k.stderr).toBe(0);
        await waitForStatus(c, id, 'STOPPED');
      } finally {
        await c.ctr(['task', 'rm', '-f', id]);
        await c.ctr(['container', 'rm', id]);
      }
      await expectClean([id]);
    });

    // containerd's TestContainerKill: "second call to kill should return an error".
    test.runIf(version === '1.6')('a second kill after the task exited fails with not found', async () => {
      const id = uniqueId('kk');
      expect((await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sh', '-c', 'while true; do sleep 0.1; done'])).code).toBe(0);
      try {
        await waitForStatus(c, id, 'RUNNING');
        const first = await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        expect(first.code, first.stderr).toBe(0);
        await waitForStatus(c, id, 'STOPPED');
        const second = await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        expect(second.code).not.toBe(0);
        expect(second.stderr).toMatch(/not found/);
        expect((await c.ctr(['task', 'rm', id])).code).toBe(0);
      } finally {
        await c.ctr(['task', 'rm', '-f', id]);
        await c.ctr(['container', 'rm', id]);
      }
      await expectClean([id]);
    });

    // Found by trying kata-ts as a new user: ctr 1.6 hung forever on an exec whose Start failed.
    test('an exec of a program that does not exist fails at once, and the task keeps running', async () => {
      const id = uniqueId('nx');
      expect((await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sleep', '600'])).code).toBe(0);
      try {
        await waitForStatus(c, id, 'RUNNING');
        const t0 = Date.now();
        const r = await c.ctr(['task', 'exec', '--exec-id', 'x1', id, '/nonexistent'], { timeoutMs: 30_000 });
        expect(r.code).not.toBe(0);
        expect(Date.now() - t0).toBeLessThan(20_000);
        expect(r.stderr).toMatch(/ExecProcess/);
        // The failed exec is gone; the same exec id can be used again.
        const again = await c.ctr(['task', 'exec', '--exec-id', 'x1', id, 'sh', '-c', 'exit 4'], { timeoutMs: 30_000 });
        expect(again.code).toBe(4);
        await waitForStatus(c, id, 'RUNNING');
      } finally {
        await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await c.ctr(['task', 'rm', '-f', id]);
        await c.ctr(['container', 'rm', id]);
      }
      await expectClean([id]);
    });

    test('killed by TERM → 143, by KILL → 137 (exec processes)', async () => {
      const id = uniqueId('sig');
      expect((await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sh', '-c', 'while true; do sleep 0.1; done'])).code).toBe(0);
      try {
        await waitForStatus(c, id, 'RUNNING');
        for (const [sig, code] of [['SIGTERM', 143], ['SIGKILL', 137]] as const) {
          const execId = `x${code}`;
          const p = c.ctr(['task', 'exec', '--exec-id', execId, id, 'sleep', '100']);
          await sleep(3000);
          const k = await c.ctr(['task', 'kill', '--exec-id', execId, '-s', sig, id]);
          expect(k.code, k.stderr).toBe(0);
          expect((await p).code).toBe(code);
        }
      } finally {
        await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await sleep(300);
        await c.ctr(['task', 'rm', '-f', id]);
        await c.ctr(['container', 'rm', id]);
      }
      await expectClean([id]);
    });

    // The agent reports the exec's own exit and ends its streams 500 ms later, whoever still holds them.
    test('an exec returns when it exits although a background child keeps stdout open', async () => {
      const id = uniqueId('bgc');
      expect((await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sh', '-c', 'while true; do sleep 0.1; done'])).code).toBe(0);
      try {
        await waitForStatus(c, id, 'RUNNING');
        const t0 = Date.now();
        const e = await c.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'sleep 30 & echo parent-done; exit 3']);
        expect(e).toMatchObject({ code: 3, stdout: 'parent-done\n' });
        expect(Date.now() - t0, c.logTail(300)).toBeLessThan(20_000);
      } finally {
        await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await sleep(300);
        await c.ctr(['task', 'rm', '-f', id]);
        await c.ctr(['container', 'rm', id]);
      }
      await expectClean([id]);
    }, 120_000);

    test('--log-uri file:// gets both streams; an unknown scheme is refused by name', async () => {
      const id = uniqueId('log');
      const file = `${c.dir}/logs/${id}.log`;
      const r = await c.ctr([...run, '--log-uri', `file://${file}`, image, id, 'sh', '-c', 'echo to-out; echo to-err >&2']);
      expect(r.code, r.stderr).toBe(0);
      const text = readFileSync(file, 'utf8');
      expect(text).toContain('to-out\n');
      expect(text).toContain('to-err\n');
      await expectClean([id]);
      const id2 = uniqueId('badlog');
      const bad = await c.ctr([...run, '--log-uri', 'ftp://host/x', image, id2, 'true']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/unknown STDIO scheme "ftp"/);
      await c.ctr(['container', 'rm', id2]);
      await expectClean([id2]);
    }, 120_000);

    test('events reach containerd in order: create, start, exec-added, exec-started, exits, delete', async () => {
      const seen: string[] = [];
      const ev = spawn(tools.ctr, ['--address', c.address, '--namespace', c.namespace, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let buf = '';
      ev.stdout.on('data', (b: Buffer) => { buf += b.toString(); });
      try {
        await sleep(500);
        const id = uniqueId('ev');
        expect((await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sh', '-c', 'while true; do sleep 0.1; done'])).code).toBe(0);
        await waitForStatus(c, id, 'RUNNING');
        expect((await c.ctr(['task', 'exec', '--exec-id', 'e1', id, 'true'])).code).toBe(0);
        expect((await c.ctr(['task', 'kill', '-s', 'SIGKILL', id])).code).toBe(0);
        await waitForStatus(c, id, 'STOPPED');
        expect((await c.ctr(['task', 'rm', id])).code).toBe(0);
        await c.ctr(['container', 'rm', id]);
        await sleep(1000);
        for (const line of buf.split('\n')) {
          const m = /\s(\/tasks\/[a-z-]+)\s/.exec(line);
          if (m && line.includes(id)) seen.push(m[1] + (line.includes('"e1"') ? ':e1' : ''));
        }
        expect(seen).toEqual(['/tasks/create', '/tasks/start', '/tasks/exec-added:e1', '/tasks/exec-started:e1', '/tasks/exit:e1', '/tasks/delete:e1', '/tasks/exit', '/tasks/delete']);
        await expectClean([id]);
      } finally {
        ev.kill('SIGKILL');
      }
    }, 120_000);

    test('out of memory: /tasks/oom before /tasks/exit, exit 137', async () => {
      const ev = spawn(tools.ctr, ['--address', c.address, '--namespace', c.namespace, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let buf = '';
      ev.stdout.on('data', (b: Buffer) => { buf += b.toString(); });
      try {
        await sleep(500);
        const id = uniqueId('oom');
        const r = await c.ctr([...run, '--memory-limit', String(32 << 20), image, id, 'sh', '-c', 'x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done']);
        expect(r.code).toBe(137);
        await sleep(1000);
        const topics = buf.split('\n').filter((l) => l.includes(id)).map((l) => /\s(\/tasks\/[a-z-]+)\s/.exec(l)?.[1]).filter(Boolean);
        expect(topics).toContain('/tasks/oom');
        expect(topics.indexOf('/tasks/oom')).toBeLessThan(topics.indexOf('/tasks/exit'));
        await expectClean([id]);
      } finally {
        ev.kill('SIGKILL');
      }
    }, 120_000);

    test('ctr run -t (terminal)', async () => {
      const id = uniqueId('tty');
      // ctr needs a terminal on its own stdin for -t; script(1) provides one.
      const r = await new Promise<{ code: number; out: string }>((resolve) => {
        const cmd = [tools.ctr, '--address', c.address, '--namespace', c.namespace, ...run, '-t', image, id, 'sh', '-c', 'tty; echo tty-ok'].join(' ');
        const p = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
        p.on('exit', (code) => resolve({ code: code ?? 1, out }));
        setTimeout(() => p.kill('SIGKILL'), 60_000).unref();
      });
      expect(r.out).toContain('tty-ok');
      expect(r.out).toMatch(/\/dev\/pts\/\d+/);
      expect(r.code).toBe(0);
      await expectClean([id]);
    });

    test('seq 1 100000 arrives whole, 20 times out of 20', async () => {
      const want = Array.from({ length: 100000 }, (_, i) => `${i + 1}\n`).join('');
      for (let i = 0; i < 20; i++) {
        const id = uniqueId(`seq${i}`);
        const r = await c.ctr([...run, image, id, 'seq', '1', '100000']);
        expect(r.code).toBe(0);
        expect(r.stdout.length).toBe(want.length);
        expect(r.stdout === want).toBe(true);
      }
    }, 600_000);

    test('64 MiB of stdout, byte-exact', async () => {
      const id = uniqueId('big');
      const line = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n';
      const size = 64 << 20;
      const want = line.repeat(Math.ceil(size / line.length)).slice(0, size);
      const r = await c.ctr([...run, image, id, 'sh', '-c', `yes ${line.trim()} | head -c ${size}`], { maxBuffer: 80 << 20 });
      expect(r.code).toBe(0);
      expect(r.stdout.length).toBe(size);
      expect(createHash('sha256').update(r.stdout).digest('hex')).toBe(createHash('sha256').update(want).digest('hex'));
      await expectClean([id]);
    }, 300_000);

    test('50 parallel execs', async () => {
      const id = uniqueId('par');
      expect((await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sh', '-c', 'while true; do sleep 0.1; done'])).code).toBe(0);
      try {
        await waitForStatus(c, id, 'RUNNING');
        const rs = await Promise.all(Array.from({ length: 50 }, (_, i) =>
          c.ctr(['task', 'exec', '--exec-id', `p${i}`, id, 'sh', '-c', `echo exec-${i}; exit ${i % 7}`])));
        rs.forEach((r, i) => expect(r, r.stderr).toMatchObject({ code: i % 7, stdout: `exec-${i}\n` }));
      } finally {
        await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await sleep(300);
        await c.ctr(['task', 'rm', '-f', id]);
        await c.ctr(['container', 'rm', id]);
      }
      await expectClean([id]);
    }, 300_000);

    test('20 ctr run --rm in a row leave nothing', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const id = uniqueId(`row${i}`);
        ids.push(id);
        const r = await c.ctr([...run, image, id, 'true']);
        expect(r.code, r.stderr).toBe(0);
      }
      await expectClean(ids);
    }, 600_000);

    test('containerd killed and restarted: the task is still there, killable, deletable', async () => {
      const id = uniqueId('rst');
      expect((await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sh', '-c', 'while true; do sleep 0.1; done'])).code).toBe(0);
      await waitForStatus(c, id, 'RUNNING');
      await c.restart();
      await waitForStatus(c, id, 'RUNNING');
      expect((await c.ctr(['task', 'kill', '-s', 'SIGKILL', id])).code).toBe(0);
      await waitForStatus(c, id, 'STOPPED');
      expect((await c.ctr(['task', 'rm', id])).code).toBe(0);
      expect((await c.ctr(['container', 'rm', id])).code).toBe(0);
      await expectClean([id]);
    }, 180_000);

    test('the VM dies: the task exits with 255 and is deletable', async () => {
      const id = uniqueId('vmdie');
      expect((await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sh', '-c', 'while true; do sleep 0.1; done'])).code).toBe(0);
      await waitForStatus(c, id, 'RUNNING');
      const pids = JSON.parse(readFileSync(`/run/vc/vm/${id}/pids.json`, 'utf8')) as Record<string, { pid: number }>;
      process.kill(pids['cloud-hypervisor'].pid, 'SIGKILL');
      await waitForStatus(c, id, 'STOPPED');
      const ls = await c.ctr(['task', 'ls']);
      expect(ls.stdout).toMatch(new RegExp(`${id}\\s+\\d+\\s+STOPPED`));
      expect((await c.ctr(['task', 'rm', id])).code).toBe(0);
      expect((await c.ctr(['container', 'rm', id])).code).toBe(0);
      await expectClean([id]);
      expect(c.logTail(400)).toMatch(/the sandbox died; every task exits with 255/);
    }, 120_000);

    test('shim SIGKILLed: ctr task rm cleans up through `delete`', async () => {
      const id = uniqueId('crash');
      expect((await c.ctr(['run', '-d', '--runtime', runtimeType, image, id, 'sh', '-c', 'while true; do sleep 0.1; done'])).code).toBe(0);
      await waitForStatus(c, id, 'RUNNING');
      const bundle = `${c.dir}/state/io.containerd.runtime.v2.task/${c.namespace}/${id}`;
      const pid = Number(readFileSync(`${bundle}/shim.pid`, 'utf8'));
      expect(pid).toBeGreaterThan(0);
      process.kill(pid, 'SIGKILL');
      await waitForStatus(c, id, 'STOPPED').catch(() => {});
      await c.ctr(['task', 'rm', '-f', id]);
      await c.ctr(['container', 'rm', id]);
      await expectClean([id]);
      const sock = createHash('sha256').update(`${c.address}/${c.namespace}/${id}`).digest('hex');
      expect(existsSync(`/run/containerd/s/${sock}`)).toBe(false);
    }, 120_000);
  });
}

// containerd 1.7 rejects task API v3: `start` must tell it from 2.x and answer a plain address.
describe.skipIf(why('1.7'))(`kata-ts on containerd 1.7${why('1.7') ? ` (skipped: ${why('1.7')})` : ''}`, () => {
  test('ctr run --rm: stdout, stderr and the exit code', async () => {
    const c = await Containerd.start({ version: '1.7' });
    try {
      const id = uniqueId('t17');
      const r = await c.ctr([...run, image, id, 'sh', '-c', 'echo out; echo err >&2; exit 7']);
      expect(r, c.logTail(60)).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n' });
      const bundleAddress = c.logTail(2000).match(/shim serving.*socket=(\S+)/);
      expect(bundleAddress).not.toBeNull();
      await expectClean([id]);
    } finally {
      await c.stop();
      pruneVersionCache(VERSION_CACHE_DIR);
    }
  }, 120_000);
});
