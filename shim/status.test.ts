import { Code } from 'ttrpc-ts';
import { describe as group, expect, it } from 'vitest';
import { ConfigError } from '../config/index.js';
import { VmNotReadyError, describe } from './errors.js';
import { statusCodeOf, toStatus } from './status.js';

group('status mapping', () => {
  it('a sandbox that could not start because of its config answers INVALID_ARGUMENT, not UNAVAILABLE', () => {
    const cause = new ConfigError('CONFIG_INVALID', '/etc/kata/x.toml: [hypervisor.clh] default_memory must be >= 128 MiB', { file: '/etc/kata/x.toml', key: 'default_memory' });
    expect(statusCodeOf(new VmNotReadyError('cannot start sandbox s1', { cause }))).toBe(Code.INVALID_ARGUMENT);
  });

  it('a sandbox that is not ready in time, with no cause, stays UNAVAILABLE', () => {
    expect(statusCodeOf(new VmNotReadyError('sandbox s1 not ready within 1000 ms'))).toBe(Code.UNAVAILABLE);
  });

  it('the message keeps the cause chain but says each text once', () => {
    const inner = new Error('runc create failed: no such file or directory');
    const mid = new Error(`failed to create container c1: ${inner.message}`, { cause: inner });
    const outer = new VmNotReadyError('cannot start sandbox c1', { cause: mid });
    expect(describe(outer)).toBe('cannot start sandbox c1: failed to create container c1: runc create failed: no such file or directory');
    expect(toStatus(outer).message).toBe(describe(outer));
  });

  it('a multi-line cause whose first line the message already quotes is not repeated (a TOML parse error)', () => {
    const parse = new Error('Invalid character, expected "=" at row 1, col 10, pos 9:\n1> garbage [[[\n            ^');
    const err = new Error(`/etc/kata.toml: not valid TOML: ${parse.message.split('\n')[0]}`, { cause: parse });
    expect(describe(err)).toBe('/etc/kata.toml: not valid TOML: Invalid character, expected "=" at row 1, col 10, pos 9:');
  });
});
