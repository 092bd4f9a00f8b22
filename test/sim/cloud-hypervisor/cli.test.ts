import { describe, expect, it } from 'vitest';
import { parseCli } from './cli.js';
import { CliError } from './errors.js';

function fails(argv: string[]): CliError {
  try { parseCli(argv); } catch (e) { return e as CliError; }
  throw new Error(`parsed: ${argv.join(' ')}`);
}

describe('cloud-hypervisor command line', () => {
  it.each([
    [['--api-socket', '/run/a.sock'], { apiSocket: { path: '/run/a.sock' } }],
    [['--api-socket=path=/run/a.sock'], { apiSocket: { path: '/run/a.sock' } }],
    [['--api-socket', 'fd=3'], { apiSocket: { fd: 3 } }],
    [['--event-monitor', 'path=/tmp/ev', '--log-file', '/tmp/l'], { eventMonitor: { path: '/tmp/ev' }, logFile: '/tmp/l' }],
    [['-v', '-vv', '--api-socket', '/a'], { verbosity: 3 }],
    [['--seccomp', 'false', '--api-socket', '/a'], { seccomp: 'false' }],
    [['-V'], { version: true }],
  ])('%j', (argv, want) => {
    expect(parseCli(argv as string[])).toMatchObject(want);
  });

  it('rejects an unknown flag the way clap does (exit status 2, usage)', () => {
    const e = fails(['--bogus']);
    expect(e.exitStatus).toBe(2);
    expect(e.message).toMatch(/^error: unexpected argument '--bogus' found\n/);
    expect(e.message).toContain('Usage: cloud-hypervisor [OPTIONS]');
  });

  it('rejects a missing value (clap, status 2)', () => {
    expect(fails(['--api-socket'])).toMatchObject({ exitStatus: 2, message: expect.stringContaining("a value is required for '--api-socket") });
  });

  it('refuses VM flags with a clear simulator message (status 1)', () => {
    expect(fails(['--kernel', '/vmlinux'])).toMatchObject({ exitStatus: 1, message: expect.stringContaining('--kernel is not supported') });
  });

  it('rejects bad --seccomp and conflicting socket specs', () => {
    expect(fails(['--seccomp', 'maybe']).exitStatus).toBe(1);
    expect(fails(['--api-socket', 'path=/a,fd=3']).message).toMatch(/mutually exclusive/);
  });
});
