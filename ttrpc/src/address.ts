import { UsageError } from './errors.js';

/**
 * Turns a ttrpc address into what node:net takes as `path`: 'unix:///p' and '/p' → '/p';
 * abstract '@name' or '\0name' → '\0name' (Linux abstract namespace).
 */
export function socketPath(address: string): string {
  let a = address;
  if (a.startsWith('unix://')) a = a.slice('unix://'.length);
  if (a.startsWith('@')) a = '\0' + a.slice(1);
  if (a === '' || a === '\0') throw new UsageError(`ttrpc address ${JSON.stringify(address)} is empty`);
  if (a.includes('://')) throw new UsageError(`ttrpc address ${JSON.stringify(address)}: only unix:// is supported`);
  // sun_path holds 108 bytes including the terminating NUL for file paths
  if (Buffer.byteLength(a) > 107) throw new UsageError(`ttrpc address ${JSON.stringify(address)} is longer than a Unix socket path may be (107 bytes)`);
  return a;
}
