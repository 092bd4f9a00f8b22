// --event-monitor: each event is a pretty-printed JSON object followed by a blank line, with the
// time since VMM start (event_monitor/src/lib.rs).
import { closeSync, openSync, writeSync } from 'node:fs';
import type { SocketSpec } from './cli.js';

export class EventMonitor {
  private fd?: number;
  private readonly t0 = process.hrtime.bigint();
  private readonly owned: boolean;

  constructor(spec?: SocketSpec) {
    this.owned = !!spec && 'path' in spec;
    if (spec) this.fd = 'path' in spec ? openSync(spec.path, 'w') : spec.fd;
  }

  emit(source: string, event: string, properties: Record<string, string> | null = null): void {
    if (this.fd === undefined) return;
    const ns = process.hrtime.bigint() - this.t0;
    const ev = { timestamp: { secs: Number(ns / 1_000_000_000n), nanos: Number(ns % 1_000_000_000n) }, source, event, properties };
    try { writeSync(this.fd, JSON.stringify(ev, null, 2) + '\n\n'); } catch { /* reader gone: events are best effort */ }
  }

  close(): void {
    if (this.fd !== undefined && this.owned) closeSync(this.fd);
    this.fd = undefined;
  }
}
