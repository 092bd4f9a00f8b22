import { describe, expect, it } from 'vitest';
import { parseStdio } from './stdio.js';

const io = (stdout: string, o: Partial<{ stdin: string; stderr: string; terminal: boolean }> = {}) =>
  ({ stdin: o.stdin ?? '', stdout, stderr: o.stderr ?? stdout, terminal: o.terminal ?? false });

describe('parseStdio', () => {
  it('all empty is null IO', () => expect(parseStdio(io('', { stderr: '' }))).toEqual({ kind: 'null' }));
  it('plain paths are fifos', () => expect(parseStdio(io('/f/c-stdout', { stdin: '/f/c-stdin', stderr: '/f/c-stderr' })))
    .toEqual({ kind: 'fifo', stdin: '/f/c-stdin', stdout: '/f/c-stdout', stderr: '/f/c-stderr', terminal: false }));
  it('terminal: only stdout carries the pty', () => expect(parseStdio(io('/f/o', { stderr: '/f/e', terminal: true })))
    .toMatchObject({ kind: 'fifo', stdout: '/f/o', stderr: '' }));
  it('file://', () => expect(parseStdio(io('file:///var/log/c%201.log'))).toEqual({ kind: 'file', path: '/var/log/c 1.log' }));
  it('binary:// with query args in order', () => expect(parseStdio(io('binary:///usr/bin/logger?id=1&flag&dir=/x')))
    .toEqual({ kind: 'binary', path: '/usr/bin/logger', args: ['id', '1', 'flag', 'dir', '/x'], needsReadyByte: false }));
  it('binary-v2:// needs a ready byte', () => expect(parseStdio(io('binary-v2:///l'))).toMatchObject({ needsReadyByte: true }));
  it('unknown scheme is an error naming it', () => expect(() => parseStdio(io('ftp://host/x'))).toThrow(/unknown STDIO scheme "ftp"/));
  it('file:// needs an absolute path', () => expect(() => parseStdio(io('file://'))).toThrow(/absolute path/));
});
