import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Code, StatusError, type CallContext } from 'ttrpc-ts';
import { google, grpc, types } from '../proto/index.js';
import type { AgentClient } from './client.js';
import { dialAgent } from './dial.js';
import { AgentClosedError, AgentError } from './errors.js';
import { fakeVsock, type FakeVsock } from './testutil.js';

interface Seen { method: string; payload: Uint8Array; deadlineMs: number | undefined }

const empty = () => google.protobuf.Empty.encode({}).finish();
const never = () => new Promise<Uint8Array>(() => {});

let fake: FakeVsock;
let client: AgentClient;
let seen: Seen[];
let answers: Record<string, (p: Uint8Array, ctx: CallContext) => Promise<Uint8Array> | Uint8Array>;

const AGENT_METHODS = ['CreateSandbox', 'DestroySandbox', 'CreateContainer', 'StartContainer', 'RemoveContainer', 'ExecProcess',
  'SignalProcess', 'WaitProcess', 'ReadStdout', 'ReadStderr', 'WriteStdin', 'CloseStdin', 'TtyWinResize', 'StatsContainer',
  'PauseContainer', 'ResumeContainer', 'UpdateContainer', 'GetOOMEvent', 'SetGuestDateTime', 'GetGuestDetails', 'OnlineCPUMem',
  'UpdateInterface', 'UpdateRoutes', 'AddARPNeighbors'];

function recorder(service: string, methods: string[]) {
  return Object.fromEntries(methods.map((m) => [m, (payload: Uint8Array, ctx: CallContext) => {
    seen.push({ method: `${service}/${m}`, payload, deadlineMs: ctx.deadline === undefined ? undefined : ctx.deadline - Date.now() });
    return answers[m] ? answers[m](payload, ctx) : empty();
  }]));
}

beforeEach(async () => {
  seen = [];
  answers = {};
  fake = fakeVsock({
    handlers: {
      'grpc.AgentService': recorder('grpc.AgentService', AGENT_METHODS),
      'grpc.Health': recorder('grpc.Health', ['Check', 'Version']),
    },
  });
  await fake.listen();
  client = await dialAgent({ socketPath: fake.path, port: 1024, timeoutMs: 5000 });
});

afterEach(async () => {
  client.close();
  await fake.close();
});

type Row = [string, (c: AgentClient) => Promise<unknown>, string, { decode(b: Uint8Array): any }, object, number | undefined, (() => Uint8Array)?, unknown?];
const S = 1000;
const rows: Row[] = [
  ['check', (c) => c.check(), 'grpc.Health/Check', grpc.CheckRequest, { service: '' }, 30 * S,
    () => grpc.HealthCheckResponse.encode({ status: 1 }).finish(), undefined],
  ['version', (c) => c.version(), 'grpc.Health/Version', grpc.CheckRequest, {}, 60 * S,
    () => grpc.VersionCheckResponse.encode({ agentVersion: '3.32.0', grpcVersion: '0.8.4' }).finish(), { agentVersion: '3.32.0', grpcVersion: '0.8.4' }],
  ['createSandbox', (c) => c.createSandbox({ hostname: 'h', sandboxId: 's1', dns: ['nameserver 1.1.1.1'] }), 'grpc.AgentService/CreateSandbox',
    grpc.CreateSandboxRequest, { hostname: 'h', sandboxId: 's1', dns: ['nameserver 1.1.1.1'] }, 60 * S],
  ['destroySandbox', (c) => c.destroySandbox(), 'grpc.AgentService/DestroySandbox', grpc.DestroySandboxRequest, {}, 60 * S],
  ['createContainer (caller deadline)', (c) => c.createContainer({ containerId: 'c1', execId: 'c1' }, 45 * S), 'grpc.AgentService/CreateContainer',
    grpc.CreateContainerRequest, { containerId: 'c1', execId: 'c1' }, 45 * S],
  ['startContainer', (c) => c.startContainer('c1'), 'grpc.AgentService/StartContainer', grpc.StartContainerRequest, { containerId: 'c1' }, 60 * S],
  ['removeContainer', (c) => c.removeContainer('c1'), 'grpc.AgentService/RemoveContainer', grpc.RemoveContainerRequest, { containerId: 'c1' }, 60 * S],
  ['removeContainer with timeout', (c) => c.removeContainer('c1', 90), 'grpc.AgentService/RemoveContainer', grpc.RemoveContainerRequest,
    { containerId: 'c1', timeout: 90 }, 95 * S],
  ['execProcess', (c) => c.execProcess({ containerId: 'c1', execId: 'e1', process: { Args: ['sh'], Terminal: true } }), 'grpc.AgentService/ExecProcess',
    grpc.ExecProcessRequest, { containerId: 'c1', execId: 'e1', process: { Args: ['sh'], Terminal: true } }, 60 * S],
  ['signalProcess', (c) => c.signalProcess('c1', '', 9), 'grpc.AgentService/SignalProcess', grpc.SignalProcessRequest, { containerId: 'c1', signal: 9 }, 60 * S],
  ['waitProcess (no deadline)', (c) => c.waitProcess('c1', 'c1'), 'grpc.AgentService/WaitProcess', grpc.WaitProcessRequest, { containerId: 'c1', execId: 'c1' },
    undefined, () => grpc.WaitProcessResponse.encode({ status: 137 }).finish(), 137],
  ['readStdout (no deadline)', (c) => c.readStdout('c1', 'e1', 32768), 'grpc.AgentService/ReadStdout', grpc.ReadStreamRequest,
    { containerId: 'c1', execId: 'e1', len: 32768 }, undefined, () => grpc.ReadStreamResponse.encode({ data: Buffer.from('hi') }).finish(), Buffer.from('hi')],
  ['readStderr (no deadline)', (c) => c.readStderr('c1', 'e1', 10), 'grpc.AgentService/ReadStderr', grpc.ReadStreamRequest,
    { containerId: 'c1', execId: 'e1', len: 10 }, undefined, () => grpc.ReadStreamResponse.encode({}).finish(), Buffer.alloc(0)],
  ['writeStdin', (c) => c.writeStdin('c1', 'e1', Buffer.from('abc')), 'grpc.AgentService/WriteStdin', grpc.WriteStreamRequest,
    { containerId: 'c1', execId: 'e1', data: new Uint8Array(Buffer.from('abc')) }, 60 * S, () => grpc.WriteStreamResponse.encode({ len: 2 }).finish(), 2],
  ['closeStdin', (c) => c.closeStdin('c1', 'e1'), 'grpc.AgentService/CloseStdin', grpc.CloseStdinRequest, { containerId: 'c1', execId: 'e1' }, 60 * S],
  ['ttyWinResize (row = rows, column = cols)', (c) => c.ttyWinResize('c1', 'e1', 24, 80), 'grpc.AgentService/TtyWinResize', grpc.TtyWinResizeRequest,
    { containerId: 'c1', execId: 'e1', row: 24, column: 80 }, 60 * S],
  ['statsContainer', async (c) => (await c.statsContainer('c1')).cgroupStats?.memoryStats?.usage?.usage, 'grpc.AgentService/StatsContainer',
    grpc.StatsContainerRequest, { containerId: 'c1' }, 60 * S,
    () => grpc.StatsContainerResponse.encode({ cgroupStats: { memoryStats: { usage: { usage: 2 ** 40 } } } }).finish(), 2 ** 40],
  ['pauseContainer', (c) => c.pauseContainer('c1'), 'grpc.AgentService/PauseContainer', grpc.PauseContainerRequest, { containerId: 'c1' }, 60 * S],
  ['resumeContainer', (c) => c.resumeContainer('c1'), 'grpc.AgentService/ResumeContainer', grpc.ResumeContainerRequest, { containerId: 'c1' }, 60 * S],
  ['updateContainer', (c) => c.updateContainer('c1', { Memory: { Limit: 1 << 30 } }), 'grpc.AgentService/UpdateContainer', grpc.UpdateContainerRequest,
    { containerId: 'c1', resources: { Memory: { Limit: 1 << 30 } } }, 60 * S],
  ['getOOMEvent (no deadline)', (c) => c.getOOMEvent(), 'grpc.AgentService/GetOOMEvent', grpc.GetOOMEventRequest, {}, undefined,
    () => grpc.OOMEvent.encode({ containerId: 'c9' }).finish(), 'c9'],
  ['setGuestDateTime', (c) => c.setGuestDateTime(new Date(1_700_000_000_123)), 'grpc.AgentService/SetGuestDateTime', grpc.SetGuestDateTimeRequest,
    { Sec: 1_700_000_000, Usec: 123_000 }, 60 * S],
  ['getGuestDetails', async (c) => (await c.getGuestDetails()).memBlockSizeBytes, 'grpc.AgentService/GetGuestDetails', grpc.GuestDetailsRequest,
    { memBlockSize: true, memHotplugProbe: true }, 60 * S, () => grpc.GuestDetailsResponse.encode({ memBlockSizeBytes: 128 << 20 }).finish(), 128 << 20],
  ['onlineCpuMem', (c) => c.onlineCpuMem({ wait: false, nbCpus: 2, cpuOnly: true }), 'grpc.AgentService/OnlineCPUMem', grpc.OnlineCPUMemRequest,
    { nbCpus: 2, cpuOnly: true }, 60 * S],
  ['updateInterface', async (c) => (await c.updateInterface({ name: 'eth0', device: 'eth0', mtu: 1500 })).name, 'grpc.AgentService/UpdateInterface',
    grpc.UpdateInterfaceRequest, { interface: { name: 'eth0', device: 'eth0', mtu: 1500 } }, 60 * S,
    () => types.Interface.encode({ name: 'eth0' }).finish(), 'eth0'],
  ['updateRoutes', async (c) => (await c.updateRoutes([{ dest: '10.0.0.0/24', device: 'eth0' }])).map((r) => r.dest), 'grpc.AgentService/UpdateRoutes',
    grpc.UpdateRoutesRequest, { routes: { Routes: [{ dest: '10.0.0.0/24', device: 'eth0' }] } }, 60 * S,
    () => grpc.Routes.encode({ Routes: [{ dest: '10.0.0.0/24' }] }).finish(), ['10.0.0.0/24']],
  ['addArpNeighbors', (c) => c.addArpNeighbors([{ device: 'eth0', lladdr: 'aa:bb:cc:dd:ee:ff', toIPAddress: { address: '10.0.0.2' } }]),
    'grpc.AgentService/AddARPNeighbors', grpc.AddARPNeighborsRequest,
    { neighbors: { ARPNeighbors: [{ device: 'eth0', lladdr: 'aa:bb:cc:dd:ee:ff', toIPAddress: { address: '10.0.0.2' } }] } }, 60 * S],
];

const plain = (m: any, T: any) => T.toObject(m, { defaults: false, bytes: Uint8Array as any });

describe('AgentClient: one RPC per method, with its deadline', () => {
  it.each(rows)('%s', async (_n, invoke, method, reqType, wantReq, deadline, answer, wantResult) => {
    const m = method.split('/')[1];
    if (answer) answers[m] = answer;
    const result = await invoke(client);
    expect(seen.map((s) => s.method)).toEqual([method]);
    const got = reqType.decode(seen[0].payload);
    expect(plain(got, reqType)).toEqual(plain(reqType.decode((reqType as any).encode(wantReq).finish()), reqType));
    if (deadline === undefined) expect(seen[0].deadlineMs).toBeUndefined();
    else {
      expect(seen[0].deadlineMs).toBeGreaterThan(deadline - 2000);
      expect(seen[0].deadlineMs).toBeLessThanOrEqual(deadline);
    }
    if (wantResult !== undefined) expect(result).toEqual(wantResult);
  });
});

describe('AgentClient errors', () => {
  it('an agent status becomes AgentError with the code and method', async () => {
    answers.StartContainer = () => { throw new StatusError(Code.NOT_FOUND, 'container does not exist c1: not found'); };
    const err = await client.startContainer('c1').catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ code: 'AGENT_RPC', grpcCode: Code.NOT_FOUND, method: 'StartContainer' });
    expect(err.message).toContain('container does not exist c1');
  });

  it('an unhealthy agent fails check()', async () => {
    answers.Check = () => grpc.HealthCheckResponse.encode({ status: grpc.HealthCheckResponse.ServingStatus.NOT_SERVING }).finish();
    await expect(client.check()).rejects.toThrow(/agent health is NOT_SERVING/);
  });

  it('a missed deadline is AgentError DEADLINE_EXCEEDED', async () => {
    answers.CreateContainer = never;
    const err = await client.createContainer({ containerId: 'c1' }, 150).catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err.grpcCode).toBe(Code.DEADLINE_EXCEEDED);
  });

  it('connection loss fails every pending call with AgentClosedError and calls onClose once', async () => {
    answers.WaitProcess = never;
    answers.ReadStdout = never;
    answers.GetOOMEvent = never;
    const closes: Error[] = [];
    client.onClose((e) => closes.push(e));
    const pending = [client.waitProcess('c1', 'c1'), client.readStdout('c1', 'c1', 10), client.getOOMEvent()].map((p) => p.catch((e) => e));
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.length).toBe(3);
    for (const s of fake.sockets) s.destroy();
    const errs = await Promise.all(pending);
    for (const e of errs) {
      expect(e).toBeInstanceOf(AgentClosedError);
      expect(e.code).toBe('AGENT_CLOSED');
    }
    await new Promise((r) => setTimeout(r, 10));
    expect(closes.length).toBe(1);
    expect(closes[0]).toBeInstanceOf(AgentClosedError);
    expect(client.closed).toBe(true);
    await expect(client.startContainer('c1')).rejects.toBeInstanceOf(AgentClosedError);
  });

  it('close() fails pending calls with AgentClosedError', async () => {
    answers.WaitProcess = never;
    const p = client.waitProcess('c1', 'c1').catch((e) => e);
    await new Promise((r) => setTimeout(r, 30));
    client.close();
    expect(await p).toBeInstanceOf(AgentClosedError);
  });
});
