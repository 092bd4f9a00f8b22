import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { anyOf, containerd, google, grpc, io, runtimeoptions, timestampFrom, toDate, TypeUrl, types } from './index.js';

const here = dirname(fileURLToPath(import.meta.url));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('generated code', () => {
  it('is not stale: regenerating gives the committed bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gen-proto-'));
    try {
      await promisify(execFile)(process.execPath, [join(here, 'generate.mjs'), dir]);
      for (const f of ['proto.js', 'proto.d.ts']) {
        const fresh = await readFile(join(dir, f));
        const committed = await readFile(join(here, 'gen', f));
        expect(fresh.equals(committed), `proto/gen/${f} is stale: run npm run gen:proto`).toBe(true);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('wire format', () => {
  it('decodes 64-bit integers as JS numbers (long.js switched off)', () => {
    const m = grpc.SetGuestDateTimeRequest.decode(grpc.SetGuestDateTimeRequest.encode({ Sec: 1_700_000_000_123, Usec: -5 }).finish());
    expect(m.Sec).toBe(1_700_000_000_123);
    expect(m.Usec).toBe(-5);
    expect(typeof grpc.GuestDetailsResponse.decode(new Uint8Array([0x08, 0x80, 0x80, 0x80, 0x08])).memBlockSizeBytes).toBe('number');
  });

  it('uses the field numbers of the reference tables', () => {
    // DeleteResponse: pid 1, exit_status 2, exited_at 3 {seconds 1, nanos 2}
    expect(hex(containerd.task.v2.DeleteResponse.encode({ pid: 7, exitStatus: 137, exitedAt: { seconds: 1, nanos: 2 } }).finish()))
      .toBe('0807' + '108901' + '1a04' + '0801' + '1002');
    // TaskExit: container_id 1, id 2, pid 3, exit_status 4
    expect(hex(containerd.events.TaskExit.encode({ containerId: 'c', id: 'e', pid: 1, exitStatus: 2 }).finish()))
      .toBe('0a0163' + '120165' + '1801' + '2002');
    // Kata: CreateContainerRequest.OCI 6, sandbox_pidns 7; Spec.Root 3 {Path 1}
    expect(hex(grpc.CreateContainerRequest.encode({ OCI: { Root: { Path: '/r' } }, sandboxPidns: true }).finish()))
      .toBe('3206' + '1a04' + '0a022f72' + '3801');
    // ReadStreamRequest len 3; TtyWinResizeRequest row 3, column 4
    expect(hex(grpc.ReadStreamRequest.encode({ len: 32768 }).finish())).toBe('18808002');
    expect(hex(grpc.TtyWinResizeRequest.encode({ row: 1, column: 2 }).finish())).toBe('18012002');
    // runtimeoptions: config_path 2, config_body 3
    expect(hex(runtimeoptions.v1.Options.encode({ configPath: 'p', configBody: new Uint8Array([1]) }).finish())).toBe('1201701a0101');
    // cgroups v1 memory.usage 33 {usage 2}; v2 memory.usage 32
    expect(hex(io.containerd.cgroups.v1.Metrics.encode({ memory: { usage: { usage: 5 } } }).finish())).toBe('2205' + '8a02' + '021005');
    expect(hex(io.containerd.cgroups.v2.Metrics.encode({ memory: { usage: 5 } }).finish())).toBe('2203' + '800205');
    // types.Interface raw_flags 8, Route family 6
    expect(hex(types.Interface.encode({ rawFlags: 128 }).finish())).toBe('408001');
    expect(hex(types.Route.encode({ family: types.IPFamily.v6 }).finish())).toBe('3001');
  });

  it('has both task services with every method on the same messages', () => {
    const methods = ['State', 'Create', 'Start', 'Delete', 'Pids', 'Pause', 'Resume', 'Checkpoint', 'Kill', 'Exec',
      'ResizePty', 'CloseIO', 'Update', 'Wait', 'Stats', 'Connect', 'Shutdown'];
    for (const svc of [containerd.task.v2.Task, containerd.task.v3.Task]) {
      for (const m of methods) expect(typeof (svc.prototype as any)[m[0].toLowerCase() + m.slice(1)], m).toBe('function');
    }
  });

  it('decodes an Envelope with the 1.6 and the 1.7+ message alike', () => {
    const env = { timestamp: { seconds: 10, nanos: 5 }, namespace: 'k8s.io', topic: '/tasks/exit', event: anyOf(TypeUrl.taskExit, new Uint8Array([1, 2])) };
    const a = containerd.types.Envelope.encode(env).finish();
    const b = containerd.services.events.ttrpc.v1.Envelope.encode(env).finish();
    expect(hex(a)).toBe(hex(b));
    const back = containerd.types.Envelope.decode(b);
    expect(back.event?.type_url).toBe('containerd.events.TaskExit');
    expect([...back.event!.value!]).toEqual([1, 2]);
  });

  it('encodes BootstrapParams with negative log levels and an optional socket_dir', () => {
    const p = containerd.runtime.bootstrap.v1.BootstrapParams;
    const m = p.decode(p.encode({ instanceId: 'i', logLevel: containerd.runtime.bootstrap.v1.LogLevel.DEBUG }).finish());
    expect(m.logLevel).toBe(-4);
    expect(m.socketDir == null || m.socketDir === '').toBe(true);
    const withDir = p.decode(p.encode({ socketDir: '' }).finish());
    expect(withDir.socketDir).toBe('');
  });
});

describe('helpers', () => {
  it.each([
    ['epoch', 0, 0, 0],
    ['millis', 1_700_000_000_123, 1_700_000_000, 123_000_000],
    ['before epoch', -1, -1, 999_000_000],
  ])('timestampFrom %s', (_n, ms, seconds, nanos) => {
    const ts = timestampFrom(new Date(ms));
    expect(ts.seconds).toBe(seconds);
    expect(ts.nanos).toBe(nanos);
    expect(toDate(ts).getTime()).toBe(ms);
  });

  it('toDate of an absent timestamp is the epoch', () => {
    expect(toDate(undefined).getTime()).toBe(0);
    expect(toDate(google.protobuf.Timestamp.decode(new Uint8Array())).getTime()).toBe(0);
  });

  it('rejects an invalid Date by name', () => {
    expect(() => timestampFrom(new Date(NaN))).toThrow(/timestampFrom: invalid date/);
  });

  it('type URLs are bare names', () => {
    for (const url of Object.values(TypeUrl)) expect(url.startsWith('type.googleapis.com/')).toBe(false);
    expect(TypeUrl.taskExit).toBe('containerd.events.TaskExit');
  });
});
