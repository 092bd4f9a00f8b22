// The process state machine (containerd's process/init_state.go, as one table).
import { IllegalStateError } from './errors.js';

export type ProcState = 'created' | 'running' | 'paused' | 'stopped' | 'deleted';
export type ProcOp = 'start' | 'pause' | 'resume' | 'exit' | 'delete';

/** state → operation → next state. A missing entry is an illegal step. */
export const TRANSITIONS: Record<ProcState, Partial<Record<ProcOp, ProcState>>> = {
  created: { start: 'running', exit: 'stopped', delete: 'deleted' },
  running: { pause: 'paused', exit: 'stopped' },
  paused: { resume: 'running', exit: 'stopped' },
  stopped: { delete: 'deleted' },
  deleted: {},
};

export const ALL_STATES = Object.keys(TRANSITIONS) as ProcState[];
export const ALL_OPS: ProcOp[] = ['start', 'pause', 'resume', 'exit', 'delete'];

/** Next state, or IllegalStateError naming the state and the operation. */
export function nextState(what: string, from: ProcState, op: ProcOp): ProcState {
  const to = TRANSITIONS[from][op];
  if (!to) throw new IllegalStateError(what, from, op);
  return to;
}

/** containerd.v1.types.Status values. */
export const STATUS = { UNKNOWN: 0, CREATED: 1, RUNNING: 2, STOPPED: 3, PAUSED: 4, PAUSING: 5 } as const;

export function statusOf(s: ProcState): number {
  switch (s) {
    case 'created': return STATUS.CREATED;
    case 'running': return STATUS.RUNNING;
    case 'paused': return STATUS.PAUSED;
    case 'stopped': return STATUS.STOPPED;
    case 'deleted': return STATUS.STOPPED;
  }
}

/** A holder of one state that moves only through the table. */
export class StateMachine {
  private s: ProcState = 'created';
  constructor(private readonly what: string) {}
  get state(): ProcState { return this.s; }
  can(op: ProcOp): boolean { return TRANSITIONS[this.s][op] !== undefined; }
  step(op: ProcOp): ProcState {
    this.s = nextState(this.what, this.s, op);
    return this.s;
  }
}
