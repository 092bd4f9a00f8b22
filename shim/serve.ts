// The shim daemon: serves the task API (v2 and v3) on the listener inherited as fd 3 (or
// -socket), publishes events to containerd, logs to stderr (the bundle's log fifo).
import { rmSync } from 'node:fs';
import { Client, Server } from 'ttrpc-ts';
import { kataPaths } from '../config/index.js';
import { containerd, timestampFrom } from '../proto/index.js';
import { readEnv, type ShimFlags } from './cli.js';
import { describe } from './errors.js';
import { EventPublisher, type EventSink, type QueuedEvent } from './events.js';
import { createLogger, type Logger } from './log.js';
import { TaskService } from './service.js';
import { SOCKET_PATH_ENV } from './start.js';
import { taskHandlers } from './task-table.js';

const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';

export function encodeForward(namespace: string, e: QueuedEvent): Uint8Array {
  return containerd.services.events.ttrpc.v1.ForwardRequest.encode({
    envelope: { timestamp: timestampFrom(new Date(e.at)), namespace, topic: e.topic, event: { type_url: e.typeUrl, value: e.value } },
  }).finish();
}

/** Events.Forward over a ttrpc connection to containerd (5 s per call, as containerd's publisher). */
export function eventConnector(address: string, namespace: string, log: Logger): () => Promise<EventSink> {
  return async () => {
    if (!address) throw new Error('no TTRPC_ADDRESS: cannot publish events');
    const c = await Client.connect(address, { timeoutMs: 5000 });
    return {
      get closed() { return c.closed; },
      close: () => c.close(),
      forward: async (e) => { await c.call(EVENTS_SERVICE, 'Forward', encodeForward(namespace, e), { timeoutMs: 5000 }); },
    };
  };
}

export async function runServe(o: { flags: ShimFlags; env: NodeJS.ProcessEnv }): Promise<void> {
  const { flags } = o;
  const log = createLogger({ fd: 2, debug: flags.debug, fields: { sandbox: flags.id || undefined, pid: process.pid } });
  const env = readEnv(o.env, flags);
  const namespace = flags.namespace || env.namespace;
  const events = new EventPublisher({ connect: eventConnector(env.ttrpcAddress, namespace, log), log: log.child({ subsystem: 'events' }) });
  const server = new Server({ log: log.child({ subsystem: 'ttrpc' }) });
  let exiting = false;
  const exit = async (why: string, code = 0) => {
    if (exiting) return;
    exiting = true;
    log.info('shim exiting', { why });
    const hard = setTimeout(() => process.exit(code), 15_000);
    hard.unref();
    try {
      await svc.destroy();
    } catch (err) {
      log.error('cleanup failed', { error: describe(err) });
    }
    await events.flush(3000);
    events.close();
    server.close();
    const sock = flags.socket || o.env[SOCKET_PATH_ENV];
    if (sock) rmSync(sock, { force: true });
    process.exit(code);
  };
  const svc = new TaskService({
    namespace, log, events, paths: kataPaths, env: o.env,
    onIdle: () => void exit('shutdown: no task left'),
  });
  const handlers = taskHandlers(svc, log);
  server.register('containerd.task.v2.Task', handlers);
  server.register('containerd.task.v3.Task', handlers);
  process.on('SIGTERM', () => void exit('SIGTERM'));
  process.on('SIGINT', () => void exit('SIGINT'));
  // A shim that dies takes every container with it: log and carry on.
  process.on('uncaughtException', (err) => log.error('uncaught exception', { error: describe(err), stack: err.stack }));
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: describe(err) }));
  await server.listen(flags.socket ? flags.socket : { fd: 3 });
  log.info('shim serving', { namespace, id: flags.id, socket: flags.socket || o.env[SOCKET_PATH_ENV] });
}
