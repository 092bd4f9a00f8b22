// ttrpc-ts against Go's containerd/ttrpc: Debian's 1.1 (what containerd 1.6 speaks) and trixie's
// 1.2 (containerd 1.7+/2.x, streaming), both directions, over real Unix sockets.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Code, Server, StatusError } from 'ttrpc-ts';
import { buildPeer, goMissing, runGoPeer, startGoServer } from './ttrpc/go-peer.mjs';
import { bv, registerPeerService, SERVICE, unbv } from './ttrpc/ts-peer.js';
import { RawPeer } from '../../ttrpc/src/testing.js';

const versions = ['1.1', '1.2'] as const;

for (const version of versions) {
  const why = goMissing(version);
  if (why) console.warn(`skipping Go ttrpc ${version} interop: ${why}`);

  describe.skipIf(why !== undefined)(`Go ttrpc ${version}`, () => {
    let bin: string;
    let dir: string;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), `ttrpc-interop-${version}-`));
      bin = await buildPeer(version);
    }, 120_000);
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    describe('ttrpc-ts client → Go server', () => {
      let stop: () => Promise<void>;
      let client: Client;
      let socket: string;
      beforeAll(async () => {
        socket = join(dir, 'go.sock');
        const srv = await startGoServer(bin, socket);
        stop = srv.stop;
        client = await Client.connect(socket);
      });
      afterAll(async () => {
        client?.close();
        await stop?.();
      });
      const call = async (method: string, v: Uint8Array | string, opts = {}) => unbv(await client.call(SERVICE, method, bv(v), opts));

      it('unary call and an empty message', async () => {
        expect((await call('Echo', 'hello from ts')).toString()).toBe('hello from ts');
        expect((await client.call(SERVICE, 'Echo', new Uint8Array())).length).toBe(0);
      });

      it('metadata reaches Go lower-cased and multi-valued', async () => {
        const md = JSON.parse((await call('Meta', '', { metadata: { 'Containerd-Namespace-TTRPC': ['k8s.io'], multi: ['a', 'b'] } })).toString());
        expect(md).toEqual({ 'containerd-namespace-ttrpc': ['k8s.io'], multi: ['a', 'b'] });
      });

      it('timeoutMs becomes the Go handler deadline; none without it', async () => {
        const left = Number((await call('Deadline', '', { timeoutMs: 5000 })).toString());
        expect(left).toBeGreaterThan(4000);
        expect(left).toBeLessThanOrEqual(5000);
        expect((await call('Deadline', '')).toString()).toBe('none');
      });

      it('local deadline → DEADLINE_EXCEEDED; the connection survives the late answer', async () => {
        await expect(call('Sleep', '300', { timeoutMs: 50 })).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
        await new Promise((r) => setTimeout(r, 350));
        expect((await call('Echo', 'after')).toString()).toBe('after');
      });

      it('Go status errors keep code, message and Any details', async () => {
        const err = await call('Fail', '5:container x: not found').catch((e) => e);
        expect(err).toBeInstanceOf(StatusError);
        expect(err.code).toBe(Code.NOT_FOUND);
        expect(err.message).toBe('container x: not found');
        {
          expect(err.details).toHaveLength(1);
          expect(err.details[0].typeUrl).toBe('type.googleapis.com/google.protobuf.StringValue');
          expect(Buffer.from(err.details[0].value).toString('hex')).toBe(Buffer.from('0a0664657461696c', 'hex').toString('hex'));
        }
      });

      it('unknown service / method → UNIMPLEMENTED "service <name>" / "method <name>"', async () => {
        await expect(client.call('no.Such', 'X', new Uint8Array())).rejects.toMatchObject({ code: Code.UNIMPLEMENTED, message: 'service no.Such' });
        await expect(client.call(SERVICE, 'Nope', new Uint8Array())).rejects.toMatchObject({ code: Code.UNIMPLEMENTED, message: 'method Nope' });
      });

      it('100 concurrent calls on one connection', async () => {
        const out = await Promise.all(Array.from({ length: 100 }, (_, i) => call('Echo', `c${i}`)));
        expect(out.map(String)).toEqual(Array.from({ length: 100 }, (_, i) => `c${i}`));
      });

      it('a 3 MiB payload both ways', async () => {
        const big = Buffer.alloc(3 << 20);
        for (let i = 0; i < big.length; i++) big[i] = i % 251;
        expect(Buffer.compare(await call('Echo', big), big)).toBe(0);
      });

      it('oversize: refused locally; Go answers a 5 MiB frame with RESOURCE_EXHAUSTED; a 5 MiB Go answer fails only that call', async () => {
        await expect(call('Echo', Buffer.alloc(5 << 20))).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
        // what Go does with an oversize frame on the wire
        const raw = await RawPeer.connect(socket);
        try {
          const n = 5 << 20;
          const f = Buffer.alloc(10 + n);
          f.writeUInt32BE(n, 0);
          f.writeUInt32BE(1, 4);
          f[8] = 1;
          raw.write(f);
          expect(await raw.nextStatus()).toMatchObject({ id: 1, code: Code.RESOURCE_EXHAUSTED, message: `message length ${n} exceed maximum message size of 4194304` });
        } finally {
          raw.destroy();
        }
        await expect(call('Big', String(5 << 20))).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED, message: /exceed maximum message size of 4194304/ });
        expect((await call('Echo', 'still up')).toString()).toBe('still up');
        expect(client.closed).toBe(false);
      });

      it.skipIf(version !== '1.2')('streams: client-streaming Sum and server-streaming Count', async () => {
        const sum = client.stream(SERVICE + 'Streams', 'Sum');
        sum.send(bv(Buffer.from([1, 2])));
        sum.send(bv(Buffer.from([3])));
        sum.closeSend();
        const got: number[][] = [];
        for await (const m of sum) got.push([...unbv(m)]);
        expect(got).toEqual([[6]]);
        const count = client.stream(SERVICE + 'Streams', 'Count', { streamingClient: false, payload: bv(Buffer.from([3])) });
        const seen: number[] = [];
        for await (const m of count) seen.push(...unbv(m));
        expect(seen).toEqual([0, 1, 2]);
      });
    });

    describe('Go client → ttrpc-ts server', () => {
      let server: Server;
      let res: Record<string, { value?: string; len?: number; code: number; msg?: string; details?: string[]; err?: string; ok?: number }>;
      beforeAll(async () => {
        server = new Server();
        registerPeerService(server);
        const socket = join(dir, 'ts.sock');
        await server.listen(socket);
        res = JSON.parse(await runGoPeer(bin, ['-mode', 'client', '-socket', socket]));
      }, 60_000);
      afterAll(() => server?.close());

      it('unary call and an empty message', () => {
        expect(res.echo).toMatchObject({ code: 0, value: 'hello from go' });
        expect(res.empty.code).toBe(0);
        expect(res.empty.len ?? 0).toBe(0); // omitted from the JSON when 0
      });

      it('metadata from Go', () => {
        expect(JSON.parse(res.meta.value!)).toEqual({ 'containerd-namespace-ttrpc': ['k8s.io'], multi: ['a', 'b'] });
      });

      it('Go context deadline reaches the handler; none without one', () => {
        const left = Number(res.deadline.value);
        expect(left).toBeGreaterThan(4000);
        expect(left).toBeLessThanOrEqual(5000);
        expect(res.nodeadline.value).toBe('none');
        // whichever fires first: Go's local deadline, or our handler's signal → DEADLINE_EXCEEDED
        expect(res.expired.err).toMatch(/deadline ?exceeded/i);
      });

      it('errors with codes and details; plain errors → UNKNOWN', () => {
        expect(res.fail).toMatchObject({ code: Code.NOT_FOUND, msg: 'container x: not found' });
        expect(res.fail.details).toEqual(['type.googleapis.com/google.protobuf.StringValue=\n\u0006detail']);
        expect(res.unknown).toMatchObject({ code: Code.UNKNOWN, msg: 'plain error' });
        expect(res.noservice).toMatchObject({ code: Code.UNIMPLEMENTED, msg: 'service no.Such' });
        expect(res.nomethod).toMatchObject({ code: Code.UNIMPLEMENTED, msg: 'method Nope' });
      });

      it('100 concurrent Go calls', () => {
        expect(res.concurrent.ok).toBe(100);
      });

      it('a 3 MiB payload both ways', () => {
        expect(res.big).toMatchObject({ code: 0, value: 'same', len: 3 << 20 });
      });

      it('oversize: a 5 MiB Go request and a 5 MiB answer → RESOURCE_EXHAUSTED, connection stays', () => {
        expect(res.oversize.code).toBe(Code.RESOURCE_EXHAUSTED);
        expect(res.oversize.msg).toMatch(/^message length \d+ exceed maximum message size of 4194304$/);
        expect(res['oversize-response'].code).toBe(Code.RESOURCE_EXHAUSTED);
        expect(res.after).toMatchObject({ code: 0, value: 'still here' });
      });

      it.skipIf(version !== '1.2')('streams from a Go client', () => {
        expect(res['stream-sum']).toMatchObject({ code: 0, value: '\u0006' });
        expect(res['stream-count']).toMatchObject({ code: 0, value: '\u0000\u0001\u0002' });
      });
    });
  });
}
