// Golden: the CreateSandbox and CreateContainer requests the client puts on the wire decode,
// with our proto, field for field to what the OCI spec and the sandbox said.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { google, grpc } from '../proto/index.js';
import type { AgentClient } from './client.js';
import { dialAgent } from './dial.js';
import { sharedFsStorage, shmStorage, toGuestSpec } from './spec.js';
import { fakeVsock, type FakeVsock } from './testutil.js';

const wire: Record<string, Uint8Array> = {};
let fake: FakeVsock;
let client: AgentClient;

beforeAll(async () => {
  const keep = (m: string) => (p: Uint8Array) => { wire[m] = p; return google.protobuf.Empty.encode({}).finish(); };
  const keepWrite = (p: Uint8Array) => { wire.WriteStdin = Uint8Array.from(p); return grpc.WriteStreamResponse.encode({ len: grpc.WriteStreamRequest.decode(p).data.length }).finish(); };
  fake = fakeVsock({ handlers: { 'grpc.AgentService': { CreateSandbox: keep('CreateSandbox'), CreateContainer: keep('CreateContainer'), WriteStdin: keepWrite } } });
  await fake.listen();
  client = await dialAgent({ socketPath: fake.path, port: 1024, timeoutMs: 5000 });
});
afterAll(async () => {
  client.close();
  await fake.close();
});

const oci = {
  ociVersion: '1.1.0',
  process: { args: ['/pause'], env: ['PATH=/usr/bin'], cwd: '/', user: { uid: 65535, gid: 65535 }, oomScoreAdj: -998, noNewPrivileges: true },
  root: { path: 'rootfs', readonly: true },
  hostname: 'web-0',
  mounts: [{ destination: '/dev/shm', type: 'bind', source: '/run/containerd/shm', options: ['rbind'] }],
  annotations: { 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': 's1' },
  linux: {
    resources: { memory: { limit: 2 ** 33 }, cpu: { shares: 2, period: 100000, quota: -1 } },
    namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'network', path: '/var/run/netns/x' }],
    maskedPaths: ['/proc/acpi'],
  },
};

describe('golden wire requests', () => {
  it('CreateSandboxRequest', async () => {
    await client.createSandbox({
      hostname: 'web-0', dns: ['nameserver 10.96.0.10', 'search default.svc.cluster.local'],
      storages: [sharedFsStorage(), shmStorage(64 << 20)], sandboxPidns: false, sandboxId: 's1',
      kernelModules: [{ name: 'e1000e', parameters: ['InterruptThrottleRate=3000'] }],
    });
    const m = grpc.CreateSandboxRequest.decode(wire.CreateSandbox);
    expect(m.hostname).toBe('web-0');
    expect(m.dns).toEqual(['nameserver 10.96.0.10', 'search default.svc.cluster.local']);
    expect(m.sandboxId).toBe('s1');
    expect(m.sandboxPidns).toBe(false);
    expect(m.storages.map((s) => [s.driver, s.source, s.fstype, s.mountPoint, s.options])).toEqual([
      ['virtio-fs', 'kataShared', 'virtiofs', '/run/kata-containers/shared/containers/', []],
      ['ephemeral', 'shm', 'tmpfs', '/run/kata-containers/sandbox/shm', ['noexec', 'nosuid', 'nodev', 'mode=1777', 'size=67108864']],
    ]);
    expect(m.kernelModules.map((k) => [k.name, k.parameters])).toEqual([['e1000e', ['InterruptThrottleRate=3000']]]);
    // field numbers: hostname 1, storages 3, sandbox_id 5, kernel_modules 7
    expect(wire.CreateSandbox[0]).toBe(0x0a);
  });

  it('CreateContainerRequest', async () => {
    const { spec, sandboxPidns } = toGuestSpec(oci, { containerId: 's1', guestRootfs: '/run/kata-containers/shared/containers/s1/rootfs', disableGuestSeccomp: true, shmSize: 64 << 20 });
    await client.createContainer({ containerId: 's1', execId: 's1', OCI: spec, sandboxPidns, storages: [] }, 60_000);
    const m = grpc.CreateContainerRequest.decode(wire.CreateContainer);
    expect([m.containerId, m.execId, m.sandboxPidns, m.storages.length]).toEqual(['s1', 's1', false, 0]);
    const s = m.OCI!;
    expect(s.Version).toBe('1.1.0');
    expect(s.Hostname).toBe('web-0');
    expect([s.Root?.Path, s.Root?.Readonly]).toEqual(['/run/kata-containers/shared/containers/s1/rootfs', true]);
    expect(s.Process?.Args).toEqual(['/pause']);
    expect(s.Process?.Env).toEqual(['PATH=/usr/bin']);
    expect([s.Process?.User?.UID, s.Process?.User?.GID, s.Process?.OOMScoreAdj, s.Process?.NoNewPrivileges]).toEqual([65535, 65535, -998, true]);
    expect(s.Mounts?.map((x) => [x.destination, x.type, x.source, x.options])).toEqual([['/dev/shm', 'bind', '/run/kata-containers/sandbox/shm', ['rbind']]]);
    expect(s.Annotations).toEqual(oci.annotations);
    expect([s.Linux?.Resources?.Memory?.Limit, s.Linux?.Resources?.CPU?.Shares, s.Linux?.Resources?.CPU?.Quota, s.Linux?.Resources?.CPU?.Period])
      .toEqual([2 ** 33, 2, -1, 100000]);
    expect(s.Linux?.Namespaces?.map((n) => [n.Type, n.Path])).toEqual([['ipc', '']]);
    expect(s.Linux?.MaskedPaths).toEqual(['/proc/acpi']);
    expect(s.Hooks).toBeFalsy();
    expect(s.Linux?.Seccomp).toBeFalsy();
  });

  it('WriteStreamRequest sent in pieces: the same bytes protobufjs encodes for the whole request', async () => {
    const data = Buffer.alloc(300_000, 7);
    const n = await client.writeStdin('c'.repeat(64), 'exec-1', [data.subarray(0, 1000), data.subarray(1000)]);
    expect(n).toBe(300_000);
    const expected = grpc.WriteStreamRequest.encode({ containerId: 'c'.repeat(64), execId: 'exec-1', data }).finish();
    expect(Buffer.compare(Buffer.from(wire.WriteStdin), Buffer.from(expected))).toBe(0);
  });
});
