// Task events to containerd: Events.Forward over its ttrpc socket, from one ordered queue.
// Nothing is dropped while containerd is away: the queue waits and reconnects with back-off.
import { describe } from './errors.js';
import type { Logger } from './log.js';

/** One envelope ready to send. */
export interface QueuedEvent {
  topic: string;
  typeUrl: string;
  value: Uint8Array;
  /** ms since the epoch, when the event happened. */
  at: number;
}

/** Sends one event; rejects when it could not (the publisher then reconnects and retries). */
export interface EventSink {
  forward(e: QueuedEvent): Promise<void>;
  close(): void;
  readonly closed: boolean;
}

export interface PublisherOptions {
  /** Opens a connection to containerd. */
  connect: () => Promise<EventSink>;
  log: Logger;
  /** Back-off before retry `attempt` (1-based), ms. */
  backoffMs?: (attempt: number) => number;
  sleep?: (ms: number) => Promise<void>;
}

const defaultBackoff = (attempt: number) => Math.min(1000 * attempt, 5000);

/** A FIFO that sends events one at a time, in the order they were published. */
export class EventPublisher {
  private readonly queue: QueuedEvent[] = [];
  private sink?: EventSink;
  private running = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private wake?: () => void;

  constructor(private readonly o: PublisherOptions) {}

  /** Queues an event; returns at once. */
  publish(topic: string, typeUrl: string, value: Uint8Array, at = Date.now()): void {
    if (this.stopped) return;
    this.queue.push({ topic, typeUrl, value, at });
    this.o.log.debug('event queued', { topic, queued: this.queue.length });
    if (!this.running) void this.run();
    this.wake?.();
  }

  get pending(): number { return this.queue.length; }

  /** Resolves when every queued event was sent, or after timeoutMs. */
  flush(timeoutMs: number): Promise<boolean> {
    if (this.queue.length === 0 && !this.running) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => { clearTimeout(t); resolve(true); });
    });
  }

  /** Stops sending; queued events are dropped. */
  close(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.sink?.close();
    this.wake?.();
    this.notifyIdle();
  }

  private notifyIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  private sleep(ms: number): Promise<void> {
    if (this.o.sleep) return this.o.sleep(ms);
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve(); }, ms);
      t.unref();
      this.wake = () => { clearTimeout(t); this.wake = undefined; if (this.stopped) resolve(); };
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    let attempt = 0;
    try {
      while (!this.stopped && this.queue.length > 0) {
        const e = this.queue[0];
        try {
          if (!this.sink || this.sink.closed) this.sink = await this.o.connect();
          await this.sink.forward(e);
          this.queue.shift();
          attempt = 0;
          this.o.log.debug('event sent', { topic: e.topic });
        } catch (err) {
          attempt++;
          // containerd away (restart) or slow: keep the event, reconnect after a pause.
          this.o.log.warn('cannot forward event to containerd; will retry', { topic: e.topic, attempt, error: describe(err) });
          this.sink?.close();
          this.sink = undefined;
          await this.sleep((this.o.backoffMs ?? defaultBackoff)(attempt));
        }
      }
    } finally {
      this.running = false;
      if (this.queue.length === 0 || this.stopped) this.notifyIdle();
    }
  }
}
