import { describe, expect, it } from 'vitest';
import { daemonArgs, parseArgs, readEnv } from './cli.js';

describe('parseArgs (Go flag syntax)', () => {
  it('parses containerd 1.6 start', () => {
    const a = parseArgs(['-namespace', 'k8s.io', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 'abc', 'start']);
    expect(a.action).toBe('start');
    expect(a.flags).toMatchObject({ namespace: 'k8s.io', address: '/run/containerd/containerd.sock', publishBinary: '/usr/bin/containerd', id: 'abc', debug: false });
  });
  it('parses delete with -bundle and -debug', () => {
    const a = parseArgs(['-namespace', 'ns', '-address', '/a', '-publish-binary', '/b', '-id', 'x', '-bundle', '/run/b', '-debug', 'delete']);
    expect(a).toMatchObject({ action: 'delete', flags: { bundle: '/run/b', debug: true, id: 'x' } });
  });
  it('no action means serve', () => {
    expect(parseArgs(['-namespace', 'ns', '-id', 'x']).action).toBe('serve');
  });
  it.each([
    [['-v'], 'version'], [['-version'], 'version'], [['--version'], 'version'], [['-info'], 'info'], [['-h'], 'help'], [['--help'], 'help'], [['-help', '-v'], 'help'],
  ] as const)('%j → %s', (argv, action) => {
    expect(parseArgs(argv).action).toBe(action);
  });
  it('accepts -name=value, --name value and -bool=false', () => {
    const a = parseArgs(['--namespace=ns', '--id', 'i', '-debug=false', '-socket', '/s', '-debug-socket=/d']);
    expect(a.flags).toMatchObject({ namespace: 'ns', id: 'i', debug: false, socket: '/s', debugSocket: '/d' });
  });
  it('a boolean never takes the next word as its value', () => {
    const a = parseArgs(['-debug', 'start']);
    expect(a).toMatchObject({ action: 'start', flags: { debug: true } });
  });
  it('stops at -- and at the first non-flag word', () => {
    expect(parseArgs(['-id', 'x', '--', 'start']).action).toBe('start');
    expect(() => parseArgs(['start', '-id', 'x'])).not.toThrow();
  });
  it.each([
    [['-bogus'], 'flag provided but not defined: -bogus'],
    [['-id'], 'flag needs an argument: -id'],
    [['-debug=maybe'], 'invalid boolean value "maybe" for -debug'],
    [['---id', 'x'], 'bad flag syntax: ---id'],
    [['frobnicate'], 'unknown action "frobnicate"'],
  ])('rejects %j', (argv, msg) => {
    expect(() => parseArgs(argv)).toThrow(msg);
  });
  it('daemon args are what containerd\'s library passes', () => {
    const { flags } = parseArgs(['-namespace', 'n', '-address', '/a', '-publish-binary', '/p', '-id', 'i', '-debug', 'start']);
    expect(daemonArgs(flags)).toEqual(['-namespace', 'n', '-address', '/a', '-publish-binary', '/p', '-id', 'i', '-debug']);
  });
});

describe('readEnv', () => {
  const { flags } = parseArgs(['-namespace', 'n', '-address', '/run/c.sock', '-id', 'i']);
  it('containerd 1.6: no MAX_SHIM_VERSION, ttrpc address from TTRPC_ADDRESS', () => {
    expect(readEnv({ TTRPC_ADDRESS: '/run/c.sock.ttrpc' }, flags)).toEqual({
      ttrpcAddress: '/run/c.sock.ttrpc', grpcAddress: '/run/c.sock', namespace: 'n', maxShimVersion: undefined, schedCore: false,
    });
  });
  it('containerd 1.7+: MAX_SHIM_VERSION, GRPC_ADDRESS, NAMESPACE, SCHED_CORE', () => {
    expect(readEnv({ TTRPC_ADDRESS: '/t', GRPC_ADDRESS: '/g', NAMESPACE: 'k8s.io', MAX_SHIM_VERSION: '2', SCHED_CORE: '1', GOMAXPROCS: '2' }, flags))
      .toEqual({ ttrpcAddress: '/t', grpcAddress: '/g', namespace: 'k8s.io', maxShimVersion: 2, schedCore: true });
  });
});
