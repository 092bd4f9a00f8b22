// One method per kata-agent RPC over one long-lived ttrpc connection, with the Go runtime's
// per-call deadlines: 30 s for Health.Check, the caller's for CreateContainer, none for the
// long polls (WaitProcess, ReadStdout/ReadStderr, GetOOMEvent), 60 s for everything else.
import { ClosedError, StatusError, type Client } from 'ttrpc-ts';
import { google, grpc, types } from '../proto/index.js';
import { AgentClosedError, AgentError } from './errors.js';
import { noopLogger, type Logger } from './log.js';

export const AGENT_SERVICE = 'grpc.AgentService';
export const HEALTH_SERVICE = 'grpc.Health';
export const DEFAULT_TIMEOUT_MS = 60_000;
export const CHECK_TIMEOUT_MS = 30_000;

interface Encoder<T> { encode(m: T): { finish(): Uint8Array } }
interface Decoder<R> { decode(b: Uint8Array): R }
const Empty = google.protobuf.Empty;

export class AgentClient {
  readonly #ttrpc: Client;
  readonly #log: Logger;

  constructor(ttrpc: Client, o: { log?: Logger } = {}) {
    this.#ttrpc = ttrpc;
    this.#log = o.log ?? noopLogger;
  }

  /** True once the connection is gone. */
  get closed(): boolean {
    return this.#ttrpc.closed;
  }

  #call<Q, R>(service: string, method: string, reqType: Encoder<Q>, req: Q, resType: Decoder<R>, timeoutMs: number | undefined): Promise<R> {
    return this.#raw(service, method, reqType.encode(req).finish(), resType, timeoutMs);
  }

  async #raw<R>(service: string, method: string, request: Uint8Array | readonly Uint8Array[], resType: Decoder<R>, timeoutMs: number | undefined): Promise<R> {
    let payload: Uint8Array;
    try {
      payload = await this.#ttrpc.call(service, method, request, timeoutMs ? { timeoutMs } : {});
    } catch (err) {
      if (err instanceof StatusError) throw new AgentError(method, err.code, err.message, { cause: err });
      if (err instanceof ClosedError) throw new AgentClosedError(`agent connection closed during ${method}`, { cause: err });
      throw err;
    }
    return resType.decode(payload);
  }

  #agent<Q, R>(method: string, reqType: Encoder<Q>, req: Q, resType: Decoder<R>, timeoutMs: number | undefined = DEFAULT_TIMEOUT_MS): Promise<R> {
    return this.#call(AGENT_SERVICE, method, reqType, req, resType, timeoutMs);
  }

  /** Health.Check; fails unless the agent reports SERVING. */
  async check(): Promise<void> {
    const r = await this.#call(HEALTH_SERVICE, 'Check', grpc.CheckRequest, { service: '' }, grpc.HealthCheckResponse, CHECK_TIMEOUT_MS);
    if (r.status !== grpc.HealthCheckResponse.ServingStatus.SERVING) {
      throw new AgentError('Check', 14 /* UNAVAILABLE */, `agent health is ${grpc.HealthCheckResponse.ServingStatus[r.status] ?? r.status}`);
    }
  }

  /** Health.Version. */
  async version(): Promise<{ agentVersion: string; grpcVersion: string }> {
    const r = await this.#call(HEALTH_SERVICE, 'Version', grpc.CheckRequest, { service: '' }, grpc.VersionCheckResponse, DEFAULT_TIMEOUT_MS);
    return { agentVersion: r.agentVersion, grpcVersion: r.grpcVersion };
  }

  /** CreateSandbox: hostname, DNS, shared-fs storages, pid-ns flag, kernel modules. */
  async createSandbox(req: grpc.ICreateSandboxRequest): Promise<void> {
    await this.#agent('CreateSandbox', grpc.CreateSandboxRequest, req, Empty);
  }

  /** DestroySandbox: the agent removes every container and stops serving. */
  async destroySandbox(): Promise<void> {
    await this.#agent('DestroySandbox', grpc.DestroySandboxRequest, {}, Empty);
  }

  /** CreateContainer, with `[runtime] create_container_timeout` as deadline (default 60 s). */
  async createContainer(req: grpc.ICreateContainerRequest, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    await this.#agent('CreateContainer', grpc.CreateContainerRequest, req, Empty, timeoutMs);
  }

  /** StartContainer: runs the container's init process. */
  async startContainer(containerId: string): Promise<void> {
    await this.#agent('StartContainer', grpc.StartContainerRequest, { containerId }, Empty);
  }

  /** RemoveContainer; `timeoutSec` bounds the agent's wait for the processes (0 = forever). */
  async removeContainer(containerId: string, timeoutSec = 0): Promise<void> {
    // Our own deadline must outlast the agent's, or we would give up before it answers.
    const deadline = timeoutSec > 0 ? Math.max(DEFAULT_TIMEOUT_MS, timeoutSec * 1000 + 5_000) : DEFAULT_TIMEOUT_MS;
    await this.#agent('RemoveContainer', grpc.RemoveContainerRequest, { containerId, timeout: timeoutSec }, Empty, deadline);
  }

  /** ExecProcess: the agent creates and starts the process. */
  async execProcess(req: grpc.IExecProcessRequest): Promise<void> {
    await this.#agent('ExecProcess', grpc.ExecProcessRequest, req, Empty);
  }

  /** SignalProcess; execId '' signals every process of the container. */
  async signalProcess(containerId: string, execId: string, signal: number): Promise<void> {
    await this.#agent('SignalProcess', grpc.SignalProcessRequest, { containerId, execId, signal }, Empty);
  }

  /** WaitProcess (no deadline): the exit status, 128+N when killed by signal N. */
  async waitProcess(containerId: string, execId: string): Promise<number> {
    return (await this.#agent('WaitProcess', grpc.WaitProcessRequest, { containerId, execId }, grpc.WaitProcessResponse, 0)).status;
  }

  /** ReadStdout (no deadline): at most `len` bytes; empty = EOF. */
  async readStdout(containerId: string, execId: string, len: number): Promise<Uint8Array> {
    return (await this.#agent('ReadStdout', grpc.ReadStreamRequest, { containerId, execId, len }, grpc.ReadStreamResponse, 0)).data;
  }

  /** ReadStderr (no deadline): at most `len` bytes; empty = EOF. */
  async readStderr(containerId: string, execId: string, len: number): Promise<Uint8Array> {
    return (await this.#agent('ReadStderr', grpc.ReadStreamRequest, { containerId, execId, len }, grpc.ReadStreamResponse, 0)).data;
  }

  /** WriteStdin: the number of bytes the agent took. Never send empty data (3.20+ agents close stdin on it). */
  async writeStdin(containerId: string, execId: string, data: Uint8Array | readonly Uint8Array[]): Promise<number> {
    // The bulk of stdin: the request goes out as [fields 1-2 + field 3's tag and length, ...data],
    // so the bytes are not copied on their way to the socket (see writeStreamRequest).
    const pieces = data instanceof Uint8Array ? [data] : data;
    const payload = [writeStreamRequestHead(containerId, execId, pieces.reduce((n, p) => n + p.length, 0)), ...pieces];
    return (await this.#raw(AGENT_SERVICE, 'WriteStdin', payload, grpc.WriteStreamResponse, DEFAULT_TIMEOUT_MS)).len;
  }

  /** CloseStdin. */
  async closeStdin(containerId: string, execId: string): Promise<void> {
    await this.#agent('CloseStdin', grpc.CloseStdinRequest, { containerId, execId }, Empty);
  }

  /** TtyWinResize (row = height, column = width). */
  async ttyWinResize(containerId: string, execId: string, rows: number, cols: number): Promise<void> {
    await this.#agent('TtyWinResize', grpc.TtyWinResizeRequest, { containerId, execId, row: rows, column: cols }, Empty);
  }

  /** StatsContainer: cgroup and network stats from the guest. */
  statsContainer(containerId: string): Promise<grpc.StatsContainerResponse> {
    return this.#agent('StatsContainer', grpc.StatsContainerRequest, { containerId }, grpc.StatsContainerResponse);
  }

  /** PauseContainer (freezes its cgroup). */
  async pauseContainer(id: string): Promise<void> {
    await this.#agent('PauseContainer', grpc.PauseContainerRequest, { containerId: id }, Empty);
  }

  /** ResumeContainer. */
  async resumeContainer(id: string): Promise<void> {
    await this.#agent('ResumeContainer', grpc.ResumeContainerRequest, { containerId: id }, Empty);
  }

  /** UpdateContainer with new resources (already stripped for the guest). */
  async updateContainer(id: string, resources: grpc.ILinuxResources): Promise<void> {
    await this.#agent('UpdateContainer', grpc.UpdateContainerRequest, { containerId: id, resources }, Empty);
  }

  /** GetOOMEvent (no deadline): the id of the next container that hit OOM. */
  async getOOMEvent(): Promise<string> {
    return (await this.#agent('GetOOMEvent', grpc.GetOOMEventRequest, {}, grpc.OOMEvent, 0)).containerId;
  }

  /** SetGuestDateTime (seconds + microseconds). */
  async setGuestDateTime(d: Date): Promise<void> {
    const ms = d.getTime();
    if (!Number.isFinite(ms)) throw new RangeError(`setGuestDateTime: invalid date ${String(d)}`);
    const sec = Math.floor(ms / 1000);
    await this.#agent('SetGuestDateTime', grpc.SetGuestDateTimeRequest, { Sec: sec, Usec: (ms - sec * 1000) * 1000 }, Empty);
  }

  /** GetGuestDetails, asking for the memory block size and hotplug-probe support as Kata does. */
  getGuestDetails(): Promise<grpc.GuestDetailsResponse> {
    return this.#agent('GetGuestDetails', grpc.GuestDetailsRequest, { memBlockSize: true, memHotplugProbe: true }, grpc.GuestDetailsResponse);
  }

  /** OnlineCPUMem after a resize. */
  async onlineCpuMem(req: grpc.IOnlineCPUMemRequest): Promise<void> {
    await this.#agent('OnlineCPUMem', grpc.OnlineCPUMemRequest, req, Empty);
  }

  /** UpdateInterface: the interface as the guest configured it. */
  updateInterface(i: types.IInterface): Promise<types.Interface> {
    return this.#agent('UpdateInterface', grpc.UpdateInterfaceRequest, { interface: i }, types.Interface);
  }

  /** UpdateRoutes: the routes as the guest has them. */
  async updateRoutes(r: types.IRoute[]): Promise<types.IRoute[]> {
    return (await this.#agent('UpdateRoutes', grpc.UpdateRoutesRequest, { routes: { Routes: r } }, grpc.Routes)).Routes;
  }

  /** AddARPNeighbors. */
  async addArpNeighbors(n: types.IARPNeighbor[]): Promise<void> {
    await this.#agent('AddARPNeighbors', grpc.AddARPNeighborsRequest, { neighbors: { ARPNeighbors: n } }, Empty);
  }

  /** Calls cb once when the connection ends (with an AgentClosedError). */
  onClose(cb: (err: Error) => void): void {
    this.#ttrpc.onClose((err) => {
      this.#log.debug('agent connection closed', { subsystem: 'agent', reason: err.message });
      cb(new AgentClosedError(err.message, { cause: err }));
    });
  }

  /** Closes the connection; pending calls fail with AgentClosedError. */
  close(): void {
    this.#ttrpc.close();
  }
}

/**
 * The start of a WriteStreamRequest whose `data` (field 3, `dataLength` bytes) follows as is:
 * the generated encoder writes container_id and exec_id, then field 3's tag and length.
 */
export function writeStreamRequestHead(containerId: string, execId: string, dataLength: number): Uint8Array {
  const w = grpc.WriteStreamRequest.encode({ containerId, execId });
  if (dataLength) w.uint32(0x1a).uint32(dataLength);
  return w.finish();
}
