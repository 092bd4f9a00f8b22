// The HTTP/1.1 API server (vmm/src/api/http): `/api/v1/<endpoint>`, requests executed one at a
// time, errors as v47+ JSON arrays of strings, `Server: Cloud Hypervisor API`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ApiError, vmmError } from './errors.js';
import type { Faults } from './faults.js';
import type { OpenApi } from './openapi.js';
import type { Vmm, VmmLog } from './vm.js';

const prefix = '/api/v1/';
const addKinds: Record<string, 'disks' | 'net' | 'fs' | 'pmem' | 'devices' | 'vsock'> = {
  'vm.add-disk': 'disks', 'vm.add-net': 'net', 'vm.add-fs': 'fs', 'vm.add-pmem': 'pmem',
  'vm.add-device': 'devices', 'vm.add-vsock': 'vsock',
};

export interface Reply { status: number; body?: unknown }

export interface ApiOptions { openapi: Promise<OpenApi>; vmm: Vmm; faults: Faults; log: VmmLog; version: string; onShutdown: () => void }

export function createApiServer(o: ApiOptions): Server {
  let queue: Promise<unknown> = Promise.resolve();
  const server = createServer((req, res) => {
    const body = readBody(req);
    // One request at a time, in arrival order, like the VMM's control loop.
    queue = queue.then(() => body.then((raw) => serve(o, req, raw, res)).catch((e) => o.log.error('api: request failed', { err: (e as Error).message })));
  });
  server.keepAliveTimeout = 0;
  return server;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, r: Reply): void {
  const headers: Record<string, string> = { Server: 'Cloud Hypervisor API' };
  let payload = '';
  if (r.body !== undefined) {
    payload = JSON.stringify(r.body);
    headers['Content-Type'] = 'application/json';
  }
  headers['Content-Length'] = String(Buffer.byteLength(payload));
  res.writeHead(r.status, headers);
  res.end(payload);
}

async function serve(o: ApiOptions, req: IncomingMessage, raw: string, res: ServerResponse): Promise<void> {
  const url = (req.url ?? '').split('?')[0];
  const name = url.startsWith(prefix) ? url.slice(prefix.length) : undefined;
  // The document loads in the background after the socket is bound; vmm.ping never waits for it.
  const openapi = name === 'vmm.ping' ? undefined : await o.openapi;
  const ep = name === 'vmm.ping' ? { name, method: 'GET' as const } : name !== undefined ? openapi!.endpoints.get(name) : undefined;
  o.log.debug('api: request', { method: req.method, url, bytes: raw.length });
  if (!ep) { send(res, { status: 404 }); return; }
  if (o.faults.apiHang.has(ep.name)) {
    o.log.info('fault injection: request never answered', { endpoint: ep.name });
    await new Promise(() => {});
  }
  let reply: Reply;
  try {
    if (req.method !== ep.method) throw new ApiError(400, ['Bad Request']);
    let body: unknown;
    if (ep.body) {
      if (raw.length === 0) throw new ApiError(400, ['Bad Request']);
      body = openapi!.parseBody(ep, raw);
    } else if (raw.length > 0 && ep.method === 'PUT') {
      throw new ApiError(400, ['Bad Request']);
    }
    if (o.faults.apiFail.has(ep.name)) throw vmmError('fault injected by CH_SIM_API_FAIL');
    reply = await dispatch(o, ep.name, body);
  } catch (e) {
    if (!(e instanceof ApiError)) {
      o.log.error('api: internal error', { endpoint: ep.name, err: (e as Error).stack });
      e = vmmError((e as Error).message);
    }
    const err = e as ApiError;
    reply = { status: err.status, body: err.chain };
  }
  o.log.info('api: response', { endpoint: ep.name, status: reply.status });
  send(res, reply);
  if (ep.name === 'vmm.shutdown' && reply.status === 200) res.on('finish', () => o.onShutdown());
}

async function dispatch(o: ApiOptions, name: string, body: any): Promise<Reply> {
  const vmm = o.vmm;
  switch (name) {
    case 'vmm.ping':
      return { status: 200, body: { build_version: `v${o.version}-kata-ts-sim`, version: o.version, pid: process.pid, features: ['kvm'] } };
    case 'vmm.shutdown': return { status: 200 };
    case 'vm.create': vmm.create(body); return { status: 204 };
    case 'vm.boot': await vmm.boot(); return { status: 204 };
    case 'vm.info': return { status: 200, body: vmm.info() };
    case 'vm.counters': return { status: 200, body: vmm.counters() };
    case 'vm.pause': vmm.pause(); return { status: 204 };
    case 'vm.resume': vmm.resume(); return { status: 204 };
    case 'vm.shutdown': await vmm.shutdown(); return { status: 204 };
    case 'vm.reboot': await vmm.reboot(); return { status: 204 };
    case 'vm.power-button': vmm.powerButton(); return { status: 204 };
    case 'vm.delete': await vmm.delete(); return { status: 204 };
    case 'vm.resize': vmm.resize(body); return { status: 204 };
    case 'vm.remove-device': vmm.removeDevice(body.id); return { status: 204 };
  }
  const kind = addKinds[name];
  if (kind) {
    const info = vmm.addDevice(kind, body);
    return info ? { status: 200, body: info } : { status: 204 };
  }
  throw vmmError(`${name} is not supported by the kata-ts simulator`);
}
