// The fifo behaviour the shim relies on, against real fifos.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeSync, readSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nullLogger } from './log.js';
import { openProcessIO, parseStdio } from './stdio.js';

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'kts-stdio-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const fifo = (name: string) => { const p = join(dir, name); execFileSync('mkfifo', [p]); return p; };
const o = { containerId: 'c1', namespace: 'ns', log: nullLogger };

describe('fifo stdio', () => {
  it('a stdin fifo nobody opens never blocks and never reports EOF', async () => {
    const io = await openProcessIO(parseStdio({ stdin: fifo('in'), stdout: fifo('out'), stderr: fifo('err'), terminal: false }), o);
    let ended = false;
    io.stdin!.on('end', () => { ended = true; }).resume();
    await new Promise((r) => setTimeout(r, 200));
    expect(ended).toBe(false);
    io.destroy();
  });

  it('stdin data then the writer leaving is EOF', async () => {
    const inPath = fifo('in');
    const io = await openProcessIO(parseStdio({ stdin: inPath, stdout: '', stderr: '', terminal: false }), o);
    const chunks: Buffer[] = [];
    const done = new Promise<void>((r) => io.stdin!.on('data', (c: Buffer) => chunks.push(c)).once('end', () => r()));
    const w = openSync(inPath, constants.O_WRONLY);
    writeSync(w, 'hello\n');
    closeSync(w);
    await done;
    expect(Buffer.concat(chunks).toString()).toBe('hello\n');
    io.destroy();
  });

  it('CloseIO ends stdin for the reader while the fifo writer stays', async () => {
    const inPath = fifo('in');
    const io = await openProcessIO(parseStdio({ stdin: inPath, stdout: '', stderr: '', terminal: false }), o);
    const w = openSync(inPath, constants.O_WRONLY);
    const ended = new Promise<void>((r) => io.stdin!.once('end', () => r()).resume());
    io.closeStdin();
    await ended;
    closeSync(w);
    io.destroy();
  });

  it('CloseIO right after the writer left loses no byte still in the fifo or buffers', async () => {
    const inPath = fifo('in');
    const io = await openProcessIO(parseStdio({ stdin: inPath, stdout: '', stderr: '', terminal: false }), o);
    let total = 0;
    // A slow reader (the guest): data piles up in the fifo and our buffers while the writer finishes.
    const ended = new Promise<void>((r) => {
      io.stdin!.on('data', (c: Buffer) => {
        total += c.length;
        io.stdin!.pause();
        setTimeout(() => io.stdin!.resume(), 2);
      }).once('end', () => r());
    });
    // containerd's client: write everything, close the fifo, then CloseIO.
    // Not execFileSync: 1 MiB does not fit in the fifo, and this process is its reader.
    await new Promise<void>((resolve, reject) => execFile('sh', ['-c', `yes 0123456789 | head -c 1048576 > ${inPath}`], (err) => (err ? reject(err) : resolve())));
    io.closeStdin();
    await ended;
    expect(total).toBe(1048576);
    io.destroy();
  });

  it('stdout opened O_RDWR: written bytes reach a reader that opens later, EOF after close', async () => {
    const outPath = fifo('out');
    const io = await openProcessIO(parseStdio({ stdin: '', stdout: outPath, stderr: '', terminal: false }), o);
    io.stdout!.write('line 1\n');
    const r = openSync(outPath, constants.O_RDONLY | constants.O_NONBLOCK);
    await io.close(1000);
    const buf = Buffer.alloc(100);
    const n = readSync(r, buf);
    expect(buf.subarray(0, n).toString()).toBe('line 1\n');
    expect(readSync(r, buf)).toBe(0);
    closeSync(r);
  });

  it('file:// appends both streams', async () => {
    const path = join(dir, 'logs', 'c.log');
    const io = await openProcessIO(parseStdio({ stdin: '', stdout: `file://${path}`, stderr: `file://${path}`, terminal: false }), o);
    io.stdout!.write('out\n');
    await new Promise((r) => setTimeout(r, 20));
    io.stderr!.write('err\n');
    await io.close(1000);
    expect(readFileSync(path, 'utf8')).toBe('out\nerr\n');
  });

  it('binary:// spawns the logger with fds 3/4/5 and waits for ready', async () => {
    const out = join(dir, 'logged');
    const script = join(dir, 'logger.sh');
    execFileSync('sh', ['-c', `printf '%s\\n' '#!/bin/sh' 'echo "$CONTAINER_ID $CONTAINER_NAMESPACE $1 $2" > ${out}' 'exec 5>&-' 'cat <&3 >> ${out}' 'cat <&4 >> ${out}' > ${script}; chmod +x ${script}`]);
    const io = await openProcessIO(parseStdio({ stdin: '', stdout: `binary://${script}?tag=x`, stderr: `binary://${script}?tag=x`, terminal: false }), o);
    io.stdout!.write('to stdout\n');
    io.stderr!.write('to stderr\n');
    await io.close(3000);
    expect(readFileSync(out, 'utf8')).toBe('c1 ns tag x\nto stdout\nto stderr\n');
  });
});
