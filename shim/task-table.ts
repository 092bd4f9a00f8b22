// The wire adapter of the task service: one row per RPC {request type, response type, handler},
// checked against the generated service's method list. Errors become statuses in toStatus only.
import type { CallContext, UnaryHandler } from 'ttrpc-ts';
import { containerd } from '../proto/index.js';
import type { Logger } from './log.js';
import type { TaskService } from './service.js';
import { toStatus } from './status.js';

const v2 = containerd.task.v2;

/** Method names of containerd.task.v2.Task, from the generated service type. */
export type TaskMethod = {
  [K in keyof containerd.task.v2.Task]: containerd.task.v2.Task[K] extends { readonly name: infer N extends string } ? N : never
}[keyof containerd.task.v2.Task];

interface Row<Req, Res> {
  request: { decode(b: Uint8Array): Req };
  /** undefined: the RPC answers google.protobuf.Empty. */
  response?: { encode(m: Res): { finish(): Uint8Array } };
  handle(s: TaskService, req: Req, ctx: CallContext): Promise<Res | void>;
}

function row<Req, Res>(request: Row<Req, Res>['request'], response: Row<Req, Res>['response'], handle: Row<Req, Res>['handle']): Row<Req, Res> {
  return { request, response, handle };
}

const EMPTY = undefined;

export const TASK_TABLE = {
  State: row(v2.StateRequest, v2.StateResponse, (s, r) => s.state(r)),
  Create: row(v2.CreateTaskRequest, v2.CreateTaskResponse, (s, r, ctx) => s.create(r, ctx.signal)),
  Start: row(v2.StartRequest, v2.StartResponse, (s, r) => s.start(r)),
  Delete: row(v2.DeleteRequest, v2.DeleteResponse, (s, r) => s.delete(r)),
  Pids: row(v2.PidsRequest, v2.PidsResponse, (s, r) => s.pids(r)),
  Pause: row(v2.PauseRequest, EMPTY, (s, r) => s.pause(r)),
  Resume: row(v2.ResumeRequest, EMPTY, (s, r) => s.resume(r)),
  Checkpoint: row(v2.CheckpointTaskRequest, EMPTY, (s, r) => s.checkpoint(r)),
  Kill: row(v2.KillRequest, EMPTY, (s, r) => s.kill(r)),
  Exec: row(v2.ExecProcessRequest, EMPTY, (s, r) => s.exec(r)),
  ResizePty: row(v2.ResizePtyRequest, EMPTY, (s, r) => s.resizePty(r)),
  CloseIO: row(v2.CloseIORequest, EMPTY, (s, r) => s.closeIO(r)),
  Update: row(v2.UpdateTaskRequest, EMPTY, (s, r) => s.update(r)),
  Wait: row(v2.WaitRequest, v2.WaitResponse, (s, r) => s.wait(r)),
  Stats: row(v2.StatsRequest, v2.StatsResponse, (s, r) => s.stats(r)),
  Connect: row(v2.ConnectRequest, v2.ConnectResponse, (s, r) => s.connect(r)),
  Shutdown: row(v2.ShutdownRequest, EMPTY, (s, r) => s.shutdown(r)),
} satisfies Record<TaskMethod, Row<any, any>>;

/** Calls that must not wait for a starting VM (they start it, or only read the shim). */
const NO_READY_WAIT = new Set<TaskMethod>(['Create', 'Connect', 'Shutdown', 'Wait', 'State']);

/** ttrpc handlers for the table: decode, (wait for the VM), handle, encode. */
export function taskHandlers(svc: TaskService, log: Logger): Record<TaskMethod, UnaryHandler> {
  const out = {} as Record<TaskMethod, UnaryHandler>;
  for (const [name, r] of Object.entries(TASK_TABLE) as [TaskMethod, Row<any, any>][]) {
    out[name] = async (payload: Uint8Array, ctx: CallContext) => {
      let req: unknown;
      try {
        req = r.request.decode(payload);
      } catch (err) {
        throw toStatus(Object.assign(new Error(`${name}: cannot decode the request`, { cause: err }), { code: 'SHIM_INVALID_ARGUMENT' }));
      }
      log.debug('task call', { method: name, service: ctx.service, req: summarize(req) });
      try {
        if (!NO_READY_WAIT.has(name)) await svc.ready();
        const res = await r.handle(svc, req, ctx);
        return r.response ? r.response.encode((res ?? {}) as never).finish() : new Uint8Array();
      } catch (err) {
        const st = toStatus(err);
        log.debug('task call failed', { method: name, code: st.code, error: st.message });
        throw st;
      }
    };
  }
  return out;
}

function summarize(req: unknown): object {
  const r = req as { id?: string; execId?: string; signal?: number };
  return { id: r.id, exec: r.execId || undefined, signal: r.signal || undefined };
}
