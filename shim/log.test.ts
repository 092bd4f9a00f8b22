import { describe, expect, it } from 'vitest';
import { createLogger, formatLine, setDebug } from './log.js';

describe('logfmt', () => {
  it('formats like Kata\'s shim', () => {
    expect(formatLine('info', 'task started', { subsystem: 'shim', pid: 12, id: 'a b' }, new Date(0)))
      .toBe('time="1970-01-01T00:00:00.000Z" level=info msg="task started" subsystem=shim pid=12 id="a b"\n');
  });
  it('debug lines only with debug on, children share the switch', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l) });
    const child = log.child({ container: 'c1' });
    child.debug('hidden');
    setDebug(log, true);
    child.debug('shown');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/level=debug msg="shown" subsystem=shim container=c1/);
  });
});
