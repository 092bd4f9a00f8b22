import { describe, expect, it } from 'vitest';
import { EventPublisher, type EventSink, type QueuedEvent } from './events.js';
import { nullLogger } from './log.js';

function fakeContainerd(failFirst: number) {
  const got: string[] = [];
  let failures = failFirst;
  let connects = 0;
  const connect = async (): Promise<EventSink> => {
    connects++;
    let closed = false;
    return {
      get closed() { return closed; },
      close() { closed = true; },
      async forward(e: QueuedEvent) {
        if (failures > 0) { failures--; closed = true; throw new Error('ttrpc: closed'); }
        await new Promise((r) => setTimeout(r, Math.random() * 3));
        got.push(e.topic);
      },
    };
  };
  return { got, connect, connects: () => connects };
}

describe('EventPublisher', () => {
  it('sends in publish order, one at a time', async () => {
    const c = fakeContainerd(0);
    const p = new EventPublisher({ connect: c.connect, log: nullLogger });
    const topics = ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete'];
    for (const t of topics) p.publish(t, 'x', new Uint8Array());
    expect(await p.flush(1000)).toBe(true);
    expect(c.got).toEqual(topics);
    expect(c.connects()).toBe(1);
  });
  it('keeps events while containerd is away and reconnects with back-off', async () => {
    const c = fakeContainerd(3);
    const waits: number[] = [];
    const p = new EventPublisher({ connect: c.connect, log: nullLogger, sleep: async (ms) => { waits.push(ms); }, backoffMs: (a) => a * 10 });
    p.publish('/tasks/start', 'x', new Uint8Array());
    p.publish('/tasks/exit', 'x', new Uint8Array());
    expect(await p.flush(1000)).toBe(true);
    expect(c.got).toEqual(['/tasks/start', '/tasks/exit']);
    expect(waits).toEqual([10, 20, 30]);
    expect(c.connects()).toBe(4);
  });
  it('flush times out while undeliverable, events stay queued', async () => {
    const p = new EventPublisher({ connect: async () => { throw new Error('ENOENT'); }, log: nullLogger, backoffMs: () => 5 });
    p.publish('/tasks/exit', 'x', new Uint8Array());
    expect(await p.flush(50)).toBe(false);
    expect(p.pending).toBe(1);
    p.close();
  });
});
