import { afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { grpc } from '../proto/index.js';
import { connectHybridVsock, dialAgent, HandshakeError } from './dial.js';
import { AgentDialError } from './errors.js';
import { fakeVsock, type FakeVsock } from './testutil.js';

const health = {
  'grpc.Health': {
    Check: () => grpc.HealthCheckResponse.encode({ status: grpc.HealthCheckResponse.ServingStatus.SERVING }).finish(),
  },
};

let fake: FakeVsock | undefined;
afterEach(async () => {
  const dir = fake?.dir;
  await fake?.close();
  fake = undefined;
  if (dir) expect(existsSync(dir)).toBe(false);
});

describe('connectHybridVsock', () => {
  it('sends CONNECT <port> and keeps the bytes behind the OK line', async () => {
    fake = fakeVsock({ after: 'HELLO' });
    fake.server.close(); // raw: nothing serves ttrpc on it
    await fake.listen();
    const s = await connectHybridVsock(fake.path, 1024);
    const got = await new Promise<string>((resolve) => s.once('data', (d) => resolve(d.toString())));
    expect(got).toBe('HELLO');
    expect(fake.connects).toEqual(['CONNECT 1024']);
    s.destroy();
  });

  it.each([
    ['no socket yet', false, 'no-socket'],
    ['guest not listening (EOF)', true, 'eof'],
  ])('%s → HandshakeError %s', async (_n, listen, reason) => {
    fake = fakeVsock({ eofFirst: 1 });
    if (listen) await fake.listen();
    const err = await connectHybridVsock(fake.path, 1024).catch((e) => e);
    expect(err).toBeInstanceOf(HandshakeError);
    expect(err.reason).toBe(reason);
  });

  it('a reply without OK is refused', async () => {
    fake = fakeVsock({ reply: 'ERR nope' });
    await fake.listen();
    const err = await connectHybridVsock(fake.path, 1024).catch((e) => e);
    expect(err.reason).toBe('bad-reply');
    expect(err.message).toContain('ERR nope');
  });
});

describe('dialAgent', () => {
  it('retries through ENOENT and EOF while the guest boots, then talks ttrpc', async () => {
    fake = fakeVsock({ eofFirst: 3, handlers: health });
    setTimeout(() => void fake!.listen(), 100);
    const t0 = Date.now();
    const c = await dialAgent({ socketPath: fake.path, port: 1024, timeoutMs: 5000 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    expect(fake.connects).toEqual(['CONNECT 1024', 'CONNECT 1024', 'CONNECT 1024', 'CONNECT 1024']);
    await c.check();
    c.close();
  });

  it('gives up after timeoutMs with AgentDialError naming the console log', async () => {
    fake = fakeVsock({ eofFirst: 1_000_000 });
    await fake.listen();
    const t0 = Date.now();
    const err = await dialAgent({ socketPath: fake.path, port: 1024, timeoutMs: 400, consoleHint: '/run/vc/vm/s1/console.log' }).catch((e) => e);
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(AgentDialError);
    expect(err.code).toBe('AGENT_DIAL');
    expect(err.message).toMatch(/never answered within 0\.4 s/);
    expect(err.message).toContain('/run/vc/vm/s1/console.log');
    expect(err.cause).toBeInstanceOf(HandshakeError);
    expect(took).toBeGreaterThanOrEqual(200);
    expect(took).toBeLessThan(1500);
    expect(fake.connects.length).toBeGreaterThan(1);
  });

  it('stops when aborted', async () => {
    fake = fakeVsock({ eofFirst: 1_000_000 });
    await fake.listen();
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('sandbox going away')), 100);
    const t0 = Date.now();
    const err = await dialAgent({ socketPath: fake.path, port: 1024, timeoutMs: 10_000, signal: ac.signal }).catch((e) => e);
    expect(err).toBeInstanceOf(AgentDialError);
    expect(err.message).toMatch(/aborted/);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it.each([
    [{ port: 0, timeoutMs: 1000 }, /invalid agent vsock port 0/],
    [{ port: 1024, timeoutMs: 0 }, /invalid agent dial timeout 0 ms/],
  ])('rejects bad options %#', async (o, re) => {
    await expect(dialAgent({ socketPath: '/nonexistent', ...o })).rejects.toThrow(re);
  });
});
