import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClhApiError, VmmError } from '../errors.js';
import { ClhClient, errorMessages } from './client.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;
let dir: string;
let server: Server;
let handler: Handler;
let inFlight = 0;
let maxInFlight = 0;
const seen: { method: string; url: string; length?: string; type?: string; body: string }[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kata-ts-clh-client-'));
  seen.length = 0;
  inFlight = maxInFlight = 0;
  server = createServer((req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, length: req.headers['content-length'], type: req.headers['content-type'], body });
      res.on('finish', () => inFlight--);
      res.on('close', () => { if (!res.writableFinished) inFlight--; });
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(join(dir, 'api.sock'), r));
});
afterEach(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('ClhClient', () => {
  it('sends body-less actions with Content-Length: 0 and JSON bodies typed', async () => {
    handler = (_req, _b, res) => { res.statusCode = 204; res.end(); };
    const c = new ClhClient(join(dir, 'api.sock'));
    await c.bootVm();
    await c.resize({ desired_vcpus: 2 });
    await c.close();
    expect(seen[0]).toMatchObject({ method: 'PUT', url: '/api/v1/vm.boot', length: '0', body: '' });
    expect(seen[1]).toMatchObject({ method: 'PUT', url: '/api/v1/vm.resize', type: 'application/json', body: '{"desired_vcpus":2}' });
  });

  it('never overlaps requests (the VMM serves one at a time)', async () => {
    handler = (req, _b, res) => setTimeout(() => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ version: req.url })); }, 20);
    const c = new ClhClient(join(dir, 'api.sock'));
    const answers = await Promise.all([c.ping(), c.info(), c.counters(), c.ping()]);
    await c.close();
    expect(maxInFlight).toBe(1);
    expect(answers.map((a) => (a as { version: string }).version)).toEqual(['/api/v1/vmm.ping', '/api/v1/vm.info', '/api/v1/vm.counters', '/api/v1/vmm.ping']);
  });

  it('keeps one connection to the VMM across calls, and drops it at close', async () => {
    handler = (_req, _b, res) => { res.statusCode = 204; res.end(); };
    let connections = 0;
    let open = 0;
    server.on('connection', (sock) => { connections++; open++; sock.on('close', () => open--); });
    const c = new ClhClient(join(dir, 'api.sock'));
    for (let i = 0; i < 5; i++) await c.bootVm();
    await c.info().catch(() => {});
    expect(connections).toBe(1);
    await c.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(open).toBe(0);
    await expect(c.ping()).rejects.toMatchObject({ code: 'VMM_STOPPED' });
  });

  it('keeps status, endpoint and the v47+ message list', async () => {
    handler = (_req, _b, res) => { res.statusCode = 500; res.end(JSON.stringify(['API request failed', 'The VM could not boot', 'VM is not created'])); };
    const c = new ClhClient(join(dir, 'api.sock'));
    const err = (await c.bootVm().catch((e: unknown) => e)) as ClhApiError;
    await c.close();
    expect(err).toBeInstanceOf(ClhApiError);
    expect(err).toMatchObject({ code: 'VMM_API', status: 500, endpoint: 'vm.boot', messages: ['API request failed', 'The VM could not boot', 'VM is not created'] });
    expect(err.message).toBe('cloud-hypervisor vm.boot: HTTP 500: API request failed: The VM could not boot: VM is not created');
  });

  it('times out a request that gets no answer, and the next one still works', async () => {
    let n = 0;
    handler = (_req, _b, res) => { if (n++ === 0) return; res.end('{"version":"v51"}'); };
    const c = new ClhClient(join(dir, 'api.sock'));
    await expect(c.ping({ timeoutMs: 100 })).rejects.toMatchObject({ code: 'VMM_TIMEOUT', message: expect.stringContaining('vmm.ping: no answer within 100 ms') });
    await expect(c.ping()).resolves.toEqual({ version: 'v51' });
    await c.close();
    await expect(c.ping()).rejects.toBeInstanceOf(VmmError);
  });

  it('reports an unreachable socket', async () => {
    const c = new ClhClient(join(dir, 'none.sock'));
    await expect(c.ping()).rejects.toMatchObject({ code: 'VMM_LAUNCH', message: expect.stringMatching(/cannot reach the API socket .*none\.sock \(ENOENT\)/) });
    await c.close();
  });

  it('errorMessages reads every error body format', () => {
    expect(errorMessages('["a","b"]')).toEqual(['a', 'b']);
    expect(errorMessages('Error booting VM: VmNotCreated\n')).toEqual(['Error booting VM: VmNotCreated']);
    expect(errorMessages('"one line"')).toEqual(['one line']);
    expect(errorMessages('')).toEqual([]);
  });
});
