// virtiofsd launched the way Kata does for cloud-hypervisor (virtiofsd.go): we create and bind
// the listening vhost-user socket ourselves and pass it as fd 3 (`--fd=3`), so the socket exists
// before the VMM starts and virtiofsd never touches the path. Deviation: no `--syslog`; its
// stderr (where it logs without --syslog) goes to our logger, i.e. the shim log.
import { linkSync, renameSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { Logger } from '../config/index.js';
import { VmmError } from './errors.js';
import { ManagedProcess } from './process.js';

export interface VirtiofsdOptions {
  path: string;
  socketPath: string;
  sharedDir: string;
  /** `virtio_fs_cache`; '' means auto (clh's default). */
  cache: string;
  extraArgs: string[];
  log: Logger;
  env?: NodeJS.ProcessEnv;
}

export function virtiofsdArgs(o: Pick<VirtiofsdOptions, 'cache' | 'sharedDir' | 'extraArgs'>): string[] {
  return ['--fd=3', `--cache=${o.cache || 'auto'}`, `--shared-dir=${o.sharedDir}`, ...o.extraArgs];
}

async function listen(path: string): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return server;
}

/** Starts virtiofsd on a fresh listening socket; on failure nothing is left (no socket, no process). */
export async function startVirtiofsd(o: VirtiofsdOptions): Promise<ManagedProcess> {
  // libuv unlinks a bound pipe's path when the handle closes. Bind at the real path (so the
  // socket's name in /proc/net/unix is the one the VMM connects to), keep a second hard link
  // while our copy of the listener closes, then move that link back into place.
  const keep = `${o.socketPath}.${process.pid}.keep`;
  rmSync(keep, { force: true });
  let server: Server;
  try {
    server = await listen(o.socketPath);
  } catch (err) {
    throw new VmmError('VIRTIOFSD', `cannot listen on ${o.socketPath}: ${(err as Error).message}`, { cause: err });
  }
  let child: ManagedProcess | undefined;
  try {
    linkSync(o.socketPath, keep);
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    child = await ManagedProcess.start({
      name: 'virtiofsd',
      path: o.path,
      args: virtiofsdArgs(o),
      env: o.env,
      log: o.log,
      errorCode: 'VIRTIOFSD',
      extraFds: [fd],
    });
  } finally {
    // The child holds its own copy of the listener; ours must not accept the VMM's connection.
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (child) renameSync(keep, o.socketPath);
    else rmSync(keep, { force: true });
  }
  return child;
}
