import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from './client.js';
import { ClosedError } from './errors.js';
import { FLAG_NO_DATA, FLAG_REMOTE_CLOSED, FLAG_REMOTE_OPEN, TYPE_DATA, TYPE_REQUEST, TYPE_RESPONSE } from './framing.js';
import { Server, type ServerStream } from './server.js';
import { Code, StatusError } from './status.js';
import { abstractName, frame, RawPeer, requestFrame } from './testing.js';

const SVC = 'test.v1.Streams';
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server() {
  const s = new Server();
  // client-streaming: sums the bytes of every message, answers with a Response
  s.registerStream(SVC, 'Sum', async (stream) => {
    let sum = 0;
    for await (const m of stream) for (const b of m) sum += b;
    return Buffer.from([sum & 0xff]);
  });
  // server-streaming: answers the request's single byte n with n Data messages, then a close
  s.registerStream(SVC, 'Count', async (stream) => {
    const req = await stream.recv();
    for (let i = 0; i < req![0]; i++) stream.send(Buffer.from([i]));
  });
  // both ways: echoes each message back
  s.registerStream(SVC, 'Echo', async (stream: ServerStream) => {
    for await (const m of stream) stream.send(m);
  });
  s.registerStream(SVC, 'Fail', async () => {
    throw new StatusError(Code.FAILED_PRECONDITION, 'no');
  });
  s.registerStream(SVC, 'Hold', (stream) => new Promise((_r, rej) => void stream.recv().catch(rej)));
  const addr = abstractName('stream');
  await s.listen(addr);
  cleanups.push(() => s.close());
  return { s, addr };
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const m of it) out.push([...m]);
  return out;
}

describe('streaming (ttrpc 1.2)', () => {
  it('client-streaming: Data frames then closeSend, answered by one Response', async () => {
    const { addr } = await server();
    const c = await Client.connect(addr);
    cleanups.push(() => c.close());
    const st = c.stream(SVC, 'Sum');
    st.send(Buffer.from([1, 2]));
    st.send(Buffer.from([3]));
    st.send(new Uint8Array()); // an empty message is still a message
    st.closeSend();
    expect(await collect(st)).toEqual([[6]]);
  });

  it('server-streaming: request with remote-closed, n Data frames, then the end', async () => {
    const { addr } = await server();
    const c = await Client.connect(addr);
    cleanups.push(() => c.close());
    const st = c.stream(SVC, 'Count', { streamingClient: false, payload: Buffer.from([4]) });
    expect(await collect(st)).toEqual([[0], [1], [2], [3]]);
  });

  it('bidirectional echo, interleaved with unary traffic on the same connection', async () => {
    const { s, addr } = await server();
    s.register('test.v1.U', { Ping: () => Buffer.from('pong') });
    const c = await Client.connect(addr);
    cleanups.push(() => c.close());
    const st = c.stream(SVC, 'Echo');
    st.send(Buffer.from([1]));
    expect([...(await st.recv())!]).toEqual([1]);
    expect(Buffer.from(await c.call('test.v1.U', 'Ping', new Uint8Array())).toString()).toBe('pong');
    st.send(Buffer.from([2]));
    expect([...(await st.recv())!]).toEqual([2]);
    st.closeSend();
    expect(await st.recv()).toBeUndefined();
  });

  it('a failing stream handler ends the stream with a Response status', async () => {
    const { addr } = await server();
    const c = await Client.connect(addr);
    cleanups.push(() => c.close());
    const st = c.stream(SVC, 'Fail');
    await expect(st.recv()).rejects.toMatchObject({ code: Code.FAILED_PRECONDITION, message: 'no' });
  });

  it('flags on the wire: Request remote-open (0x2), closeSend remote-closed|no-data (0x5)', async () => {
    const addr = abstractName('raw');
    let peer!: RawPeer;
    const srv = net.createServer((sock) => (peer = new RawPeer(sock)));
    await new Promise<void>((r) => srv.listen({ path: '\0' + addr.slice(1) }, r));
    cleanups.push(() => (peer?.destroy(), srv.close()));
    const c = await Client.connect(addr);
    cleanups.push(() => c.close());
    const st = c.stream(SVC, 'Sum');
    st.send(Buffer.from([9]));
    st.closeSend();
    const req = await peer.next();
    expect([req.type, req.flags, req.id]).toEqual([TYPE_REQUEST, FLAG_REMOTE_OPEN, 1]);
    const d = await peer.next();
    expect([d.type, d.flags, [...d.data]]).toEqual([TYPE_DATA, 0, [9]]);
    const close = await peer.next();
    expect([close.type, close.flags, close.data.length]).toEqual([TYPE_DATA, FLAG_REMOTE_CLOSED | FLAG_NO_DATA, 0]);
    // server-streaming request carries remote-closed
    c.stream(SVC, 'Count', { streamingClient: false, payload: Buffer.from([1]) });
    const req2 = await peer.next();
    expect([req2.type, req2.flags, req2.id]).toEqual([TYPE_REQUEST, FLAG_REMOTE_CLOSED, 3]);
  });

  it('server ends a server-streaming call with Data remote-closed|no-data', async () => {
    const { addr } = await server();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    raw.write(requestFrame(1, { service: SVC, method: 'Count', payload: Buffer.from([1]), hasPayload: true }, FLAG_REMOTE_CLOSED));
    const d = await raw.next();
    expect([d.type, d.flags, [...d.data]]).toEqual([TYPE_DATA, 0, [0]]);
    const end = await raw.next();
    expect([end.type, end.flags, end.data.length]).toEqual([TYPE_DATA, FLAG_REMOTE_CLOSED | FLAG_NO_DATA, 0]);
  });

  it('an absent payload on a client-streaming Request is not delivered as a message', async () => {
    const { addr } = await server();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    raw.write(requestFrame(1, { service: SVC, method: 'Sum' }, FLAG_REMOTE_OPEN));
    raw.write(frame(1, TYPE_DATA, 0, Buffer.from([5])));
    raw.write(frame(1, TYPE_DATA, FLAG_REMOTE_CLOSED | FLAG_NO_DATA));
    const st = await raw.nextStatus();
    expect([st.code, [...st.payload]]).toEqual([0, [5]]);
  });

  it('Data with remote-closed and a payload → INVALID_ARGUMENT "data close message cannot include data"', async () => {
    const { addr } = await server();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    raw.write(requestFrame(1, { service: SVC, method: 'Sum' }, FLAG_REMOTE_OPEN));
    raw.write(frame(1, TYPE_DATA, FLAG_REMOTE_CLOSED, Buffer.from([5])));
    expect(await raw.nextStatus()).toMatchObject({ id: 1, code: Code.INVALID_ARGUMENT, message: 'data close message cannot include data' });
    // the handler's own answer is dropped: nothing else arrives on id 1
    await expect(raw.next(150)).rejects.toThrow(/no frame/);
  });

  it('Data on an id with no open stream → INVALID_ARGUMENT "StreamID is no longer active"', async () => {
    const { addr } = await server();
    const raw = await RawPeer.connect(addr);
    cleanups.push(() => raw.destroy());
    raw.write(frame(7, TYPE_DATA, 0, Buffer.from([1])));
    expect(await raw.nextStatus()).toMatchObject({ id: 7, code: Code.INVALID_ARGUMENT, message: 'StreamID is no longer active' });
  });

  it('streams fail with ClosedError when the connection ends; the server handler sees it too', async () => {
    const { addr } = await server();
    const c = await Client.connect(addr);
    const st = c.stream(SVC, 'Hold');
    const got = st.recv().catch((e) => e);
    await new Promise((r) => setTimeout(r, 20));
    c.close();
    expect(await got).toBeInstanceOf(ClosedError);
    expect(() => st.send(Buffer.from([1]))).toThrow(ClosedError);
  });

  it('a stream deadline → DEADLINE_EXCEEDED', async () => {
    const { addr } = await server();
    const c = await Client.connect(addr);
    cleanups.push(() => c.close());
    const st = c.stream(SVC, 'Hold', { timeoutMs: 30 });
    await expect(st.recv()).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
  });
});
