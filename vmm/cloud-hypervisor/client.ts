// A thin client for cloud-hypervisor's REST API: one method per endpoint over one private
// request(). One keep-alive connection per API socket (node:http's Agent, at most one socket);
// requests are serialized because the VMM serves one at a time (a queued request would only time
// out behind a slow one). node:http, not undici: undici's HTTP parser is WebAssembly and costs
// the long-running shim ~35 MB of RSS, node:http ~5 MB (measured on Node 24; see vmm/README.md).
import { Agent, request } from 'node:http';
import { ClhApiError, VmmError } from '../errors.js';
import type { VmConfig, VmCounters, VmInfo, VmmPingResponse, VmResize } from './types.js';

/** Kata's per-call deadline for API calls (clh.go clhAPITimeout). */
export const API_TIMEOUT_MS = 1000;

export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class ClhClient {
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 1 });
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(readonly socketPath: string) {}

  /** GET vmm.ping: the VMM's version; the readiness probe. */
  ping(o?: CallOptions): Promise<VmmPingResponse> {
    return this.#request('GET', 'vmm.ping', undefined, o) as Promise<VmmPingResponse>;
  }
  /** PUT vmm.shutdown: shuts the VM down and makes the VMM process exit. */
  async shutdownVmm(o?: CallOptions): Promise<void> {
    await this.#request('PUT', 'vmm.shutdown', undefined, o);
  }
  /** PUT vm.create with the full VmConfig (VM created, not booted). */
  async createVm(config: VmConfig, o?: CallOptions): Promise<void> {
    await this.#request('PUT', 'vm.create', config, o);
  }
  /** PUT vm.boot. */
  async bootVm(o?: CallOptions): Promise<void> {
    await this.#request('PUT', 'vm.boot', undefined, o);
  }
  /** GET vm.info. */
  info(o?: CallOptions): Promise<VmInfo> {
    return this.#request('GET', 'vm.info', undefined, o) as Promise<VmInfo>;
  }
  /** PUT vm.shutdown: stops the VM, the VMM keeps running. */
  async shutdownVm(o?: CallOptions): Promise<void> {
    await this.#request('PUT', 'vm.shutdown', undefined, o);
  }
  /** PUT vm.resize: new vCPU count and/or total RAM in bytes. */
  async resize(body: VmResize, o?: CallOptions): Promise<void> {
    await this.#request('PUT', 'vm.resize', body, o);
  }
  /** GET vm.counters: {device: {counter: value}}. */
  counters(o?: CallOptions): Promise<VmCounters> {
    return this.#request('GET', 'vm.counters', undefined, o) as Promise<VmCounters>;
  }

  /** Drops the connection; later calls fail. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#agent.destroy();
  }

  #request(method: 'GET' | 'PUT', endpoint: string, body: unknown, o: CallOptions = {}): Promise<unknown> {
    const run = this.#tail.then(() => this.#send(method, endpoint, body, o));
    this.#tail = run.catch(() => {});
    return run;
  }

  async #send(method: 'GET' | 'PUT', endpoint: string, body: unknown, o: CallOptions): Promise<unknown> {
    if (this.#closed) throw new VmmError('VMM_STOPPED', `cloud-hypervisor ${endpoint}: API client is closed`);
    const timeoutMs = o.timeoutMs ?? API_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = o.signal ? AbortSignal.any([timeout, o.signal]) : timeout;
    let status: number;
    let text: string;
    try {
      // Body-less actions go out with Content-Length: 0 (a body there is a 400; the VMM's HTTP
      // server knows no chunked encoding, so every PUT says its length).
      const payload = body === undefined ? '' : JSON.stringify(body);
      const headers: Record<string, string | number> = method === 'PUT' ? { 'content-length': Buffer.byteLength(payload) } : {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      ({ status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = request({ socketPath: this.socketPath, agent: this.#agent, method, path: `/api/v1/${endpoint}`, headers, signal }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(payload);
      }));
    } catch (err) {
      if (timeout.aborted) {
        throw new VmmError('VMM_TIMEOUT', `cloud-hypervisor ${endpoint}: no answer within ${timeoutMs} ms on ${this.socketPath}`, { cause: err });
      }
      if (o.signal?.aborted) throw new VmmError('VMM_ABORTED', `cloud-hypervisor ${endpoint}: aborted`, { cause: err });
      const code = (err as NodeJS.ErrnoException).code;
      throw new VmmError('VMM_LAUNCH', `cloud-hypervisor ${endpoint}: cannot reach the API socket ${this.socketPath}${code ? ` (${code})` : ''}`, { cause: err });
    }
    if (status >= 300) throw new ClhApiError(endpoint, status, errorMessages(text));
    if (text === '') return undefined;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new ClhApiError(endpoint, status, [`response is not JSON: ${text.slice(0, 200)}`]);
    }
  }
}

/** v47+ sends a JSON array of strings (outermost first); older versions plain text. */
export function errorMessages(text: string): string[] {
  const t = text.trim();
  if (t === '') return [];
  try {
    const parsed: unknown = JSON.parse(t);
    if (Array.isArray(parsed) && parsed.every((m) => typeof m === 'string')) return parsed;
    if (typeof parsed === 'string') return [parsed];
  } catch {
    // not JSON: the older text form
  }
  return [t];
}
