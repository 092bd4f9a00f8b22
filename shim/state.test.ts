import { describe, expect, it } from 'vitest';
import { ALL_OPS, ALL_STATES, StateMachine, TRANSITIONS, nextState, statusOf, type ProcState } from './state.js';
import { IllegalStateError } from './errors.js';

const every = ALL_STATES.flatMap((s) => ALL_OPS.map((op) => [s, op] as const));

describe('process state machine', () => {
  it.each(every)('%s --%s-->', (from, op) => {
    const to = TRANSITIONS[from][op];
    if (to) expect(nextState('task t1', from, op)).toBe(to);
    else {
      let err: unknown;
      try { nextState('task t1', from, op); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(IllegalStateError);
      expect((err as Error).message).toBe(`cannot ${op} task t1: it is ${from}`);
      expect(err).toMatchObject({ code: 'SHIM_ILLEGAL_STATE', state: from, op });
    }
  });
  it('the normal life of a task', () => {
    const m = new StateMachine('task t1');
    const seen: ProcState[] = [m.state];
    for (const op of ['start', 'pause', 'resume', 'exit', 'delete'] as const) seen.push(m.step(op));
    expect(seen).toEqual(['created', 'running', 'paused', 'running', 'stopped', 'deleted']);
  });
  it('maps to containerd Status values', () => {
    expect(ALL_STATES.map(statusOf)).toEqual([1, 2, 4, 3, 3]);
  });
});
