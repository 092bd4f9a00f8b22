import { afterEach, describe, expect, it } from 'vitest';
import { Client } from './client.js';
import { ClosedError } from './errors.js';
import { TYPE_REQUEST, TYPE_RESPONSE } from './framing.js';
import { Server, type CallContext } from './server.js';
import { Code, StatusError } from './status.js';
import { abstractName, RawPeer, requestFrame, responseFrame } from './testing.js';
import net from 'node:net';

const SVC = 'test.v1.Echo';
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** A server with a few test methods on a fresh abstract socket, plus a connected client. */
async function pair(extra: Record<string, (p: Uint8Array, ctx: CallContext) => unknown> = {}) {
  const server = new Server();
  server.register(SVC, {
    Echo: (p) => p,
    Empty: () => undefined,
    ...(extra as Record<string, () => undefined>),
  });
  const addr = abstractName('rpc');
  await server.listen(addr);
  const client = await Client.connect(addr);
  cleanups.push(() => server.close(), () => client.close());
  return { server, client, addr };
}

/** A fake ttrpc server made of a raw listener: the test plays the server frame by frame. */
async function rawServer() {
  const addr = abstractName('raw');
  const peers: RawPeer[] = [];
  let onPeer: (p: RawPeer) => void = () => {};
  const srv = net.createServer((s) => {
    const p = new RawPeer(s);
    peers.push(p);
    onPeer(p);
  });
  await new Promise<void>((r) => srv.listen({ path: '\0' + addr.slice(1) }, r));
  cleanups.push(() => {
    for (const p of peers) p.destroy();
    srv.close();
  });
  const client = await Client.connect(addr);
  cleanups.push(() => client.close());
  const peer = peers[0] ?? (await new Promise<RawPeer>((r) => (onPeer = r)));
  return { client, peer };
}

describe('unary calls', () => {
  it('round-trips a payload', async () => {
    const { client } = await pair();
    const out = await client.call(SVC, 'Echo', Buffer.from('hello'));
    expect(Buffer.from(out).toString()).toBe('hello');
  });

  it('zero-length request and response payloads', async () => {
    const { client } = await pair();
    expect((await client.call(SVC, 'Echo', new Uint8Array())).length).toBe(0);
    expect((await client.call(SVC, 'Empty', Buffer.from('x'))).length).toBe(0);
  });

  it('metadata round trip: multi-valued, keys lower-cased', async () => {
    let seen: CallContext['metadata'] | undefined;
    const { client } = await pair({ Md: (_p, ctx) => void (seen = ctx.metadata) });
    await client.call(SVC, 'Md', new Uint8Array(), {
      metadata: { 'Containerd-Namespace-TTRPC': ['k8s.io'], traceparent: ['a', 'b'] },
    });
    expect(seen).toEqual({ 'containerd-namespace-ttrpc': ['k8s.io'], traceparent: ['a', 'b'] });
  });

  it('unknown service and unknown method → UNIMPLEMENTED, connection stays', async () => {
    const { client } = await pair();
    await expect(client.call('no.Such', 'X', new Uint8Array())).rejects.toMatchObject({ code: Code.UNIMPLEMENTED, message: 'service no.Such' });
    await expect(client.call(SVC, 'Nope', new Uint8Array())).rejects.toMatchObject({ code: Code.UNIMPLEMENTED, message: 'method Nope' });
    expect(Buffer.from(await client.call(SVC, 'Echo', Buffer.from('ok'))).toString()).toBe('ok');
  });

  it('a handler StatusError reaches the client with code, message and details', async () => {
    const details = [{ typeUrl: 'type.googleapis.com/x.Y', value: Buffer.from([1, 2, 3]) }];
    const { client } = await pair({
      Fail: () => {
        throw new StatusError(Code.NOT_FOUND, 'container c1: not found', details);
      },
    });
    const err = await client.call(SVC, 'Fail', new Uint8Array()).catch((e) => e);
    expect(err).toBeInstanceOf(StatusError);
    expect(err.code).toBe(Code.NOT_FOUND);
    expect(err.message).toBe('container c1: not found');
    expect(err.details.map((d: { typeUrl: string; value: Uint8Array }) => [d.typeUrl, [...d.value]])).toEqual([['type.googleapis.com/x.Y', [1, 2, 3]]]);
  });

  it('any other handler error → UNKNOWN with its message (sync throw and async reject)', async () => {
    const { client } = await pair({
      Sync: () => {
        throw new Error('boom');
      },
      Async: async () => {
        throw new TypeError('async boom');
      },
    });
    await expect(client.call(SVC, 'Sync', new Uint8Array())).rejects.toMatchObject({ code: Code.UNKNOWN, message: 'boom' });
    await expect(client.call(SVC, 'Async', new Uint8Array())).rejects.toMatchObject({ code: Code.UNKNOWN, message: 'async boom' });
  });

  it('a payload given in pieces goes out as the same frame bytes as one buffer, metadata and deadline included', async () => {
    const { client, peer } = await rawServer();
    const whole = Buffer.from('0123456789'.repeat(30_000));
    const pieces = [whole.subarray(0, 7), whole.subarray(7, 200_000), whole.subarray(200_000)];
    const opts = { timeoutMs: 5000, metadata: { k: ['v1', 'v2'] } };
    const calls = [client.call(SVC, 'M', whole, opts), client.call(SVC, 'M', pieces, opts), client.call(SVC, 'M', [], opts)];
    const [a, b, empty] = [await peer.next(), await peer.next(), await peer.next()];
    expect([a.id, b.id, empty.id]).toEqual([1, 3, 5]);
    expect(Buffer.compare(a.data, b.data)).toBe(0);
    expect(Buffer.compare(empty.data, requestFrame(5, { service: SVC, method: 'M', payload: new Uint8Array(), hasPayload: false, timeoutNano: 5e9, metadata: [['k', 'v1'], ['k', 'v2']] }).subarray(10))).toBe(0);
    for (const id of [1, 3, 5]) peer.write(responseFrame(id, { code: 0, message: '', details: [] }, Buffer.from([id])));
    expect((await Promise.all(calls)).map((r) => r[0])).toEqual([1, 3, 5]);
  });

  it('pieces reach a real server whole, and an oversize set of pieces is refused locally', async () => {
    const { client } = await pair();
    const out = await client.call(SVC, 'Echo', [Buffer.from('he'), Buffer.from(''), Buffer.from('llo')]);
    expect(Buffer.from(out).toString()).toBe('hello');
    const big = Buffer.alloc(3 << 20);
    await expect(client.call(SVC, 'Echo', [big, big])).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
    expect(Buffer.from(await client.call(SVC, 'Echo', [Buffer.from('still up')])).toString()).toBe('still up');
  });

  it('100 concurrent calls on one connection, answered in completion order', async () => {
    const order: number[] = [];
    const { client } = await pair({
      Delay: async (p) => {
        const n = p[0];
        await sleep((100 - n) % 17);
        order.push(n);
        return p;
      },
    });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => client.call(SVC, 'Delay', Buffer.from([i]))));
    expect(results.map((r) => r[0])).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(order).not.toEqual([...order].sort((a, b) => a - b)); // really out of order on the wire
  });
});

describe('deadlines', () => {
  it('client: timeoutMs is sent as timeout_nano', async () => {
    let deadline: number | undefined;
    const { client } = await pair({ D: (_p, ctx) => void (deadline = ctx.deadline) });
    const before = Date.now();
    await client.call(SVC, 'D', new Uint8Array(), { timeoutMs: 5000 });
    expect(deadline).toBeGreaterThanOrEqual(before + 4900);
    expect(deadline).toBeLessThanOrEqual(Date.now() + 5000);
  });

  it('client: local deadline → DEADLINE_EXCEEDED; the late response is dropped', async () => {
    const { client } = await pair({ Slow: async (p) => (await sleep(150), p) });
    const t0 = Date.now();
    await expect(client.call(SVC, 'Slow', Buffer.from([1]), { timeoutMs: 40 })).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(Date.now() - t0).toBeLessThan(140);
    await sleep(150); // the late answer arrives and finds no pending call
    expect(client.closed).toBe(false);
    expect([...(await client.call(SVC, 'Echo', Buffer.from([2])))]).toEqual([2]);
  });

  it('server: the handler gets ctx.deadline and a signal that aborts at expiry', async () => {
    let reason: unknown;
    const { client } = await pair({
      Wait: (_p, ctx) =>
        new Promise((_res, rej) => {
          ctx.signal.addEventListener('abort', () => {
            reason = ctx.signal.reason;
            rej(ctx.signal.reason);
          });
        }),
    });
    // a raw client sends timeout_nano without a local deadline, to see what the server answers
    const err = await client.call(SVC, 'Wait', new Uint8Array(), { timeoutMs: 60 }).catch((e) => e);
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    await sleep(20);
    expect(reason).toBeInstanceOf(StatusError);
    expect((reason as StatusError).code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it('server: a handler that ignores its deadline still answers (the server sends nothing at expiry)', async () => {
    const server = new Server();
    server.register(SVC, { Slow: async () => (await sleep(80), Buffer.from('late')) });
    const addr = abstractName('dl');
    await server.listen(addr);
    cleanups.push(() => server.close());
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    raw.write(requestFrame(1, { service: SVC, method: 'Slow', timeoutNano: 20e6 }));
    const st = await raw.nextStatus();
    expect(st.code).toBe(0);
    expect(Buffer.from(st.payload).toString()).toBe('late');
  });

  it('signal abort → CANCELLED', async () => {
    const { client } = await pair({ Slow: async (p) => (await sleep(100), p) });
    const ac = new AbortController();
    const p = client.call(SVC, 'Slow', new Uint8Array(), { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: Code.CANCELLED });
  });
});

describe('stream ids', () => {
  it('client ids are odd and strictly increasing, starting at 1', async () => {
    const { client, peer } = await rawServer();
    const calls = [0, 1, 2, 3].map((i) => client.call(SVC, 'M', Buffer.from([i])));
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) {
      const f = await peer.next();
      expect(f.type).toBe(TYPE_REQUEST);
      expect(f.flags).toBe(0);
      ids.push(f.id);
    }
    expect(ids).toEqual([1, 3, 5, 7]);
    // answer out of order: each call gets its own answer
    for (const id of [7, 3, 1, 5]) peer.write(responseFrame(id, { code: 0, message: '', details: [] }, Buffer.from([id])));
    expect((await Promise.all(calls)).map((r) => r[0])).toEqual([1, 3, 5, 7]);
  });

  it('client: a response for an unknown id is dropped', async () => {
    const { client, peer } = await rawServer();
    const p = client.call(SVC, 'M', new Uint8Array());
    const f = await peer.next();
    peer.write(responseFrame(99, { code: 0, message: '', details: [] }, Buffer.from([9])));
    peer.write(responseFrame(f.id, { code: 0, message: '', details: [] }, Buffer.from([1])));
    expect([...(await p)]).toEqual([1]);
  });

  it('server: even id → INVALID_ARGUMENT "StreamID must be odd for client initiated streams"', async () => {
    const { addr } = await pair();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    raw.write(requestFrame(2, { service: SVC, method: 'Echo' }));
    expect(await raw.nextStatus()).toMatchObject({ id: 2, code: Code.INVALID_ARGUMENT, message: 'StreamID must be odd for client initiated streams' });
  });

  it('server: re-used or decreasing id → INVALID_ARGUMENT "StreamID cannot be re-used and must increment"', async () => {
    const { addr } = await pair();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    raw.write(requestFrame(5, { service: SVC, method: 'Echo', payload: Buffer.from([5]) }));
    expect(await raw.nextStatus()).toMatchObject({ id: 5, code: 0 });
    raw.write(requestFrame(5, { service: SVC, method: 'Echo' }));
    expect(await raw.nextStatus()).toMatchObject({ id: 5, code: Code.INVALID_ARGUMENT, message: 'StreamID cannot be re-used and must increment' });
    raw.write(requestFrame(3, { service: SVC, method: 'Echo' }));
    expect(await raw.nextStatus()).toMatchObject({ id: 3, code: Code.INVALID_ARGUMENT });
    raw.write(requestFrame(7, { service: SVC, method: 'Echo', payload: Buffer.from([7]) }));
    expect(await raw.nextStatus()).toMatchObject({ id: 7, code: 0 });
  });
});

describe('size limits', () => {
  it('client refuses an oversize request locally with RESOURCE_EXHAUSTED', async () => {
    const { client, peer } = await rawServer();
    const err = await client.call(SVC, 'M', Buffer.alloc((4 << 20) + 1)).catch((e) => e);
    expect(err).toBeInstanceOf(StatusError);
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toMatch(/^message length \d+ exceed maximum message size of 4194304$/);
    expect(peer.frames).toEqual([]);
    expect(client.closed).toBe(false);
  });

  it('server: an oversize frame is discarded and answered RESOURCE_EXHAUSTED; the connection stays up', async () => {
    const { addr } = await pair();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    const n = 5 << 20;
    const big = Buffer.alloc(10 + n);
    big.writeUInt32BE(n, 0);
    big.writeUInt32BE(1, 4);
    big[8] = TYPE_REQUEST;
    raw.write(big);
    expect(await raw.nextStatus()).toMatchObject({ id: 1, code: Code.RESOURCE_EXHAUSTED, message: `message length ${n} exceed maximum message size of 4194304` });
    raw.write(requestFrame(3, { service: SVC, method: 'Echo', payload: Buffer.from('after') }));
    const st = await raw.nextStatus();
    expect(Buffer.from(st.payload).toString()).toBe('after');
  });

  it('server: a 3 MiB payload goes both ways; a handler answer over 4 MiB → RESOURCE_EXHAUSTED', async () => {
    const { client } = await pair({ Big: () => Buffer.alloc(5 << 20) });
    const p = Buffer.alloc(3 << 20, 7);
    const out = await client.call(SVC, 'Echo', p);
    expect(Buffer.compare(Buffer.from(out), p)).toBe(0);
    await expect(client.call(SVC, 'Big', new Uint8Array())).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
  });

  it('client: an oversize response fails that call with RESOURCE_EXHAUSTED, others go on', async () => {
    const { client, peer } = await rawServer();
    const a = client.call(SVC, 'A', new Uint8Array());
    const b = client.call(SVC, 'B', new Uint8Array());
    const fa = await peer.next();
    const fb = await peer.next();
    const n = (4 << 20) + 10;
    const big = Buffer.alloc(10 + n);
    big.writeUInt32BE(n, 0);
    big.writeUInt32BE(fa.id, 4);
    big[8] = TYPE_RESPONSE;
    peer.write(big);
    peer.write(responseFrame(fb.id, { code: 0, message: '', details: [] }, Buffer.from('b')));
    await expect(a).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED, message: `message length ${n} exceed maximum message size of 4194304` });
    expect(Buffer.from(await b).toString()).toBe('b');
  });
});

describe('bad peers', () => {
  it('an undecodable Request → INVALID_ARGUMENT "unmarshal request error", connection stays', async () => {
    const { addr } = await pair();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    const f = Buffer.from('0000000300000001' + '0100' + '0a05ab', 'hex');
    raw.write(f);
    const st = await raw.nextStatus();
    expect(st.code).toBe(Code.INVALID_ARGUMENT);
    expect(st.message).toMatch(/^unmarshal request error: /);
    raw.write(requestFrame(3, { service: SVC, method: 'Echo', payload: Buffer.from([3]) }));
    expect(await raw.nextStatus()).toMatchObject({ id: 3, code: 0 });
  });

  it('unknown frame types are ignored', async () => {
    const { addr } = await pair();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    raw.write(Buffer.from('000000000000000109' + '00', 'hex'));
    raw.write(requestFrame(3, { service: SVC, method: 'Echo', payload: Buffer.from([3]) }));
    expect(await raw.nextStatus()).toMatchObject({ id: 3, code: 0 });
  });

  it('garbage closes only that connection; the server keeps serving others', async () => {
    const { server, client, addr } = await pair();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    await sleep(10);
    expect(server.connections).toBe(2);
    raw.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await raw.closed();
    expect(Buffer.from(await client.call(SVC, 'Echo', Buffer.from('still'))).toString()).toBe('still');
    expect(server.connections).toBe(1);
  });
  it('server: a Request written one byte at a time, and three Requests in one write, are all answered', async () => {
    const { addr } = await pair();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    const one = requestFrame(1, { service: SVC, method: 'Echo', payload: Buffer.from('split') });
    for (let i = 0; i < one.length; i++) {
      raw.write(one.subarray(i, i + 1));
      await sleep(0);
    }
    expect(Buffer.from((await raw.nextStatus()).payload).toString()).toBe('split');
    raw.write(Buffer.concat([3, 5, 7].map((id) => requestFrame(id, { service: SVC, method: 'Echo', payload: Buffer.from([id]) }))));
    const got = [await raw.nextStatus(), await raw.nextStatus(), await raw.nextStatus()];
    expect(got.map((g) => [g.id, g.payload[0]])).toEqual([
      [3, 3],
      [5, 5],
      [7, 7],
    ]);
  });

  it('client: a server sending garbage closes the connection; pending calls get ClosedError', async () => {
    const { client, peer } = await rawServer();
    const p = client.call(SVC, 'A', new Uint8Array());
    await peer.next();
    peer.socket.write('HTTP/1.1 400 Bad Request\r\n\r\n');
    const err = await p.catch((e) => e);
    expect(err).toBeInstanceOf(ClosedError);
    expect(err.message).toMatch(/not ttrpc/);
    expect(client.closed).toBe(true);
  });
});

describe('connection close', () => {
  it('peer gone → one ClosedError for every pending call, later calls, and onClose once', async () => {
    const { client, peer } = await rawServer();
    const closes: ClosedError[] = [];
    client.onClose((e) => closes.push(e));
    const pending = [client.call(SVC, 'A', new Uint8Array()), client.call(SVC, 'B', new Uint8Array())];
    await peer.next();
    peer.destroy();
    const errs = await Promise.all(pending.map((p) => p.catch((e) => e)));
    expect(errs[0]).toBeInstanceOf(ClosedError);
    expect(errs[0].code).toBe('TTRPC_CLOSED');
    expect(errs[1]).toBe(errs[0]);
    expect(client.closed).toBe(true);
    await expect(client.call(SVC, 'C', new Uint8Array())).rejects.toBe(errs[0]);
    await sleep(10);
    expect(closes).toEqual([errs[0]]);
    const late: ClosedError[] = [];
    client.onClose((e) => late.push(e));
    await sleep(0);
    expect(late).toEqual([errs[0]]);
  });

  it('client.close() fails pending calls with ClosedError; the server aborts their handlers', async () => {
    let aborted = false;
    const { client, server } = await pair({
      Hang: (_p, ctx) => new Promise((_r, rej) => ctx.signal.addEventListener('abort', () => ((aborted = true), rej(new Error('x'))))),
    });
    const p = client.call(SVC, 'Hang', new Uint8Array());
    await sleep(20);
    client.close();
    await expect(p).rejects.toBeInstanceOf(ClosedError);
    await sleep(20);
    expect(aborted).toBe(true);
    expect(server.connections).toBe(0);
  });

  it('connect to a missing socket → ConnectError naming the address', async () => {
    await expect(Client.connect('/nonexistent/ttrpc.sock')).rejects.toMatchObject({ code: 'TTRPC_CONNECT', message: /"\/nonexistent\/ttrpc.sock": ENOENT/ });
  });
});

describe('server shutdown', () => {
  it('waits for in-flight calls, refuses new connections, then closes', async () => {
    const { client, server, addr } = await pair({ Slow: async (p) => (await sleep(100), p) });
    const p = client.call(SVC, 'Slow', Buffer.from('done'));
    await sleep(10);
    const t0 = Date.now();
    await server.shutdown(2000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(80);
    expect(Buffer.from(await p).toString()).toBe('done');
    expect(server.connections).toBe(0);
    await expect(Client.connect(addr)).rejects.toMatchObject({ code: 'TTRPC_CONNECT' });
  });

  it('is bounded: a handler that never answers is cut off at the timeout and sees its signal abort', async () => {
    let aborted = false;
    const { client, server } = await pair({
      Hang: (_p, ctx) => new Promise(() => ctx.signal.addEventListener('abort', () => (aborted = true))),
    });
    const p = client.call(SVC, 'Hang', new Uint8Array()).catch((e) => e);
    await sleep(10);
    const t0 = Date.now();
    await server.shutdown(100);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(90);
    expect(took).toBeLessThan(1000);
    expect(await p).toBeInstanceOf(ClosedError);
    expect(aborted).toBe(true);
  });

  it('an idle connection is closed at once', async () => {
    const { client, server } = await pair();
    const t0 = Date.now();
    await server.shutdown(5000);
    expect(Date.now() - t0).toBeLessThan(500);
    await sleep(10);
    expect(client.closed).toBe(true);
  });
});

describe('handler results', () => {
  it('a handler returning something other than bytes → INTERNAL naming the method', async () => {
    const { client } = await pair({ Bad: () => 'a string' });
    await expect(client.call(SVC, 'Bad', new Uint8Array())).rejects.toMatchObject({
      code: Code.INTERNAL,
      message: `ttrpc: handler for ${SVC}/Bad returned string, want Uint8Array`,
    });
  });

  it('the same handlers may be registered under two service names (task v2 and v3)', async () => {
    const server = new Server();
    const methods = { Echo: (p: Uint8Array) => p };
    server.register('containerd.task.v2.Task', methods);
    server.register('containerd.task.v3.Task', methods);
    expect(() => server.register('containerd.task.v3.Task', methods)).toThrow(/containerd.task.v3.Task\/Echo is already registered/);
    const addr = abstractName('two');
    await server.listen(addr);
    cleanups.push(() => server.close());
    const c = await Client.connect(addr);
    cleanups.push(() => c.close());
    expect([...(await c.call('containerd.task.v3.Task', 'Echo', Buffer.from([3])))]).toEqual([3]);
    expect([...(await c.call('containerd.task.v2.Task', 'Echo', Buffer.from([2])))]).toEqual([2]);
  });
});
