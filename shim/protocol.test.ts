import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  answerForm, containerKind, decodeBootstrapParams, encodeAnswer, encodeBootstrapParams, encodeDeleteResponse,
  encodeRuntimeInfo, majorVersion, parseStartStdin, runtimeOptionsConfigPath, socketAddress,
} from './protocol.js';
import { PbWriter, readFields } from './pbwire.js';

describe('socketAddress', () => {
  it('hashes <grpc address>/<namespace>/<id> as containerd does', () => {
    const hex = createHash('sha256').update('/run/containerd/containerd.sock/k8s.io/abc').digest('hex');
    expect(socketAddress({ grpcAddress: '/run/containerd/containerd.sock', namespace: 'k8s.io', id: 'abc' }))
      .toBe(`unix:///run/containerd/s/${hex}`);
  });
  it('cleans the joined path like Go filepath.Join', () => {
    const a = socketAddress({ grpcAddress: '/tmp/x//c.sock/', namespace: 'ns', id: 'i' });
    const hex = createHash('sha256').update('/tmp/x/c.sock/ns/i').digest('hex');
    expect(a).toBe(`unix:///run/containerd/s/${hex}`);
    expect(hex).toHaveLength(64);
  });
  it('uses BootstrapParams.socket_dir when given', () => {
    expect(socketAddress({ grpcAddress: '/g', namespace: 'n', id: 'i', socketDir: '/tmp/containerd-s-0' })).toMatch(/^unix:\/\/\/tmp\/containerd-s-0\/[0-9a-f]{64}$/);
  });
});

describe('start stdin', () => {
  const expect_ = { id: 'c1', namespace: 'default' };
  it('empty → none', () => expect(parseStartStdin(new Uint8Array(), expect_)).toEqual({ kind: 'none' }));
  it('BootstrapParams naming this instance (2.3+)', () => {
    const opts = new PbWriter().string(2, '/etc/kata/c.toml').finish();
    const buf = encodeBootstrapParams({ instanceId: 'c1', namespace: 'default', logLevel: -4, containerdVersion: 'v2.3.0',
      ttrpcAddress: '/t', grpcAddress: '/g', containerdBinary: '/usr/bin/containerd', socketDir: '/run/containerd/s',
      extensions: [{ typeUrl: 'runtimeoptions.v1.Options', value: opts }] });
    const got = parseStartStdin(buf, expect_);
    expect(got.kind).toBe('bootstrap');
    if (got.kind !== 'bootstrap') return;
    expect(got.params).toMatchObject({ instanceId: 'c1', namespace: 'default', logLevel: -4, containerdVersion: 'v2.3.0', socketDir: '/run/containerd/s', ttrpcAddress: '/t' });
    expect(runtimeOptionsConfigPath(got.params.extensions[0])).toBe('/etc/kata/c.toml');
  });
  it('runtime options Any (1.6–2.2)', () => {
    const opts = new PbWriter().string(2, '/x.toml').finish();
    const any = new PbWriter().string(1, 'runtimeoptions.v1.Options').bytes(2, opts).finish();
    const got = parseStartStdin(any, expect_);
    expect(got).toMatchObject({ kind: 'options', typeUrl: 'runtimeoptions.v1.Options' });
    expect(runtimeOptionsConfigPath(got as any)).toBe('/x.toml');
  });
  it('garbage never fails', () => {
    expect(parseStartStdin(Buffer.from('hello, world\xff\xff\xff'), expect_)).toEqual({ kind: 'none' });
  });
  it('BootstrapParams for another instance is not ours', () => {
    const buf = encodeBootstrapParams({ instanceId: 'other', namespace: 'default' });
    expect(parseStartStdin(buf, expect_).kind).not.toBe('bootstrap');
    expect(decodeBootstrapParams(buf)?.instanceId).toBe('other');
  });
});

describe('start answer', () => {
  const addr = 'unix:///run/containerd/s/abc';
  it.each([
    [{ stdin: { kind: 'none' as const }, containerdMajor: undefined }, 'plain'],
    [{ stdin: { kind: 'none' as const }, containerdMajor: 1 }, 'plain'],
    [{ stdin: { kind: 'none' as const }, containerdMajor: 2 }, 'json'],
    [{ stdin: { kind: 'bootstrap' as const, params: decodeBootstrapParams(new Uint8Array())! }, containerdMajor: 2 }, 'bootstrap'],
  ])('%j → %s', (o, form) => expect(answerForm(o)).toBe(form));
  it('plain: the address only, no newline', () => expect(Buffer.from(encodeAnswer('plain', addr)).toString()).toBe(addr));
  it('json: version 3, ttrpc', () => expect(JSON.parse(Buffer.from(encodeAnswer('json', addr)).toString())).toEqual({ version: 3, address: addr, protocol: 'ttrpc' }));
  it('bootstrap: protobuf BootstrapResult', () => {
    const f = readFields(encodeAnswer('bootstrap', addr));
    expect(f.map((x) => [x.field, x.wire === 2 ? Buffer.from(x.value).toString() : Number(x.value)])).toEqual([[1, 3], [2, addr], [3, 'ttrpc']]);
  });
  it.each([['v2.1.9', 2], ['1.7.24~ds1', 1], ['1.6.20', 1], ['garbage', undefined]])('major of %s', (v, m) => expect(majorVersion(v)).toBe(m));
});

describe('delete and info output', () => {
  it('DeleteResponse{pid 0, exit_status 137, exited_at}', () => {
    const f = readFields(encodeDeleteResponse({ pid: 0, exitStatus: 137, exitedAtMs: 1_700_000_000_250 }));
    expect(f[0]).toMatchObject({ field: 2, value: 137n });
    expect(f[1].field).toBe(3);
    const ts = readFields(f[1].value as Uint8Array);
    expect(ts).toEqual([{ field: 1, wire: 0, value: 1_700_000_000n }, { field: 2, wire: 0, value: 250_000_000n }]);
  });
  it('RuntimeInfo names the runtime', () => {
    const f = readFields(encodeRuntimeInfo({}));
    expect(Buffer.from(f[0].value as Uint8Array).toString()).toBe('io.containerd.kata-ts.v2');
  });
});

describe('containerKind', () => {
  it.each([
    [{}, { kind: 'standalone' }],
    [{ 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': 'sb' }, { kind: 'sandbox', sandboxId: 'c' }],
    [{ 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'sb' }, { kind: 'container', sandboxId: 'sb' }],
    [{ 'io.kubernetes.cri-o.ContainerType': 'container', 'io.kubernetes.cri-o.SandboxID': 'sb' }, { kind: 'container', sandboxId: 'sb' }],
  ])('%j', (ann, kind) => expect(containerKind('c', ann)).toEqual(kind));
});
