// logfmt logger, as Kata's shim writes to the bundle's `log` fifo (which is our stderr).
import { writeSync } from 'node:fs';

export type Level = 'debug' | 'info' | 'warn' | 'error';

/** Structural logger every folder takes. */
export interface Logger {
  debug(msg: string, f?: object): void;
  info(msg: string, f?: object): void;
  warn(msg: string, f?: object): void;
  error(msg: string, f?: object): void;
  child(fields: object): Logger;
}

function quote(v: unknown): string {
  let s: string;
  if (v instanceof Error) s = v.message;
  else if (typeof v === 'string') s = v;
  else if (v === undefined) s = '';
  else if (typeof v === 'object' && v !== null) {
    try { s = JSON.stringify(v); } catch { s = String(v); }
  } else s = String(v);
  return /^[A-Za-z0-9_.\-/:@+]+$/.test(s) ? s : JSON.stringify(s);
}

/** One logfmt line: time="..." level=... msg="..." subsystem=... k=v ... */
export function formatLine(level: Level, msg: string, fields: object, now: Date): string {
  let line = `time="${now.toISOString()}" level=${level === 'warn' ? 'warning' : level} msg=${JSON.stringify(msg)}`;
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${quote(v)}`;
  return line + '\n';
}

/**
 * Writes synchronously to an fd, dropping lines it cannot write: containerd may be away (its end
 * of the fifo closed) or slow, and a shim must never die or stall over a log line.
 */
export function createLogger(o: { fd?: number; debug?: boolean; fields?: object; write?: (line: string) => void }): Logger {
  const fd = o.fd ?? 2;
  const write = o.write ?? ((line: string) => {
    try { writeSync(fd, line); } catch { /* EAGAIN / EPIPE: drop the line */ }
  });
  const state = { debug: o.debug ?? false };
  const make = (base: object): Logger => {
    const emit = (level: Level, msg: string, f?: object) => write(formatLine(level, msg, { ...base, ...f }, new Date()));
    return {
      debug: (m, f) => { if (state.debug) emit('debug', m, f); },
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (f) => make({ ...base, ...f }),
    };
  };
  const root = make({ subsystem: 'shim', ...o.fields });
  return Object.assign(root, { setDebug: (d: boolean) => { state.debug = d; } });
}

/** Turns debug logging on later (config `enable_debug`). */
export function setDebug(log: Logger, on: boolean): void {
  (log as Logger & { setDebug?: (d: boolean) => void }).setDebug?.(on);
}

/**
 * One trace span at debug level: `msg="span" span=<name> duration_ms=<n>` (the benchmark's start
 * breakdown reads these). `since` is a performance.now() reading; returns now, to chain spans.
 */
export function span(log: Logger, name: string, since: number, fields?: object): number {
  const now = performance.now();
  log.debug('span', { span: name, duration_ms: Math.round((now - since) * 10) / 10, ...fields });
  return now;
}

export const nullLogger: Logger = {
  debug() {}, info() {}, warn() {}, error() {}, child() { return nullLogger; },
};
