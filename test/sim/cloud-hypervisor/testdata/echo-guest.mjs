#!/usr/bin/env node
// A minimal guest for testing the VMM simulator on its own: it honours the guest view
// (boot delay, never-listen), listens on vsock port 1024, greets each connection with the view
// it was given (one JSON line) and echoes. It ends like the agent simulator does: stdin EOF or
// SIGTERM → remove the guest dir, exit. ECHO_GUEST_EXIT_AFTER_MS makes it "crash" (exit 3).
import { createServer } from 'node:net';
import { readFileSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';

const file = process.argv[process.argv.indexOf('--guest') + 1];
const view = JSON.parse(readFileSync(file, 'utf8'));
const server = createServer((c) => {
  c.write(JSON.stringify(view) + '\n');
  c.pipe(c);
  c.on('error', () => {});
});
const end = (code) => {
  server.close();
  rmSync(view.guestDir, { recursive: true, force: true });
  if (view.cgroupParent) try { rmdirSync(`/sys/fs/cgroup/freezer${view.cgroupParent}`); } catch {}
  process.exit(code);
};
process.stdin.on('data', () => {});
process.stdin.on('end', () => end(0));
process.on('SIGTERM', () => end(0));
if (!view.neverListen) setTimeout(() => server.listen(join(view.vsockDir, '1024')), view.bootDelayMs);
if (process.env.ECHO_GUEST_EXIT_AFTER_MS) setTimeout(() => end(3), Number(process.env.ECHO_GUEST_EXIT_AFTER_MS));
