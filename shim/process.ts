// A container's init process or an exec: its state machine, stdio and exit.
import { StateMachine, type ProcState } from './state.js';
import type { ProcessIO, StdioStrings } from './stdio.js';

/** Container ids as containerd sends them, checked once. */
export type TaskId = string & { readonly __brand: 'TaskId' };
/** Exec ids; '' is the init process. */
export type ExecId = string & { readonly __brand: 'ExecId' };

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,253}$/;

export function parseTaskId(s: string | null | undefined): TaskId | undefined {
  return s && ID.test(s) ? (s as TaskId) : undefined;
}

export function parseExecId(s: string | null | undefined): ExecId | undefined {
  if (!s) return '' as ExecId;
  return ID.test(s) ? (s as ExecId) : undefined;
}

export class Proc {
  readonly sm: StateMachine;
  /** Host pid we report (Kata reports the hypervisor's). */
  pid = 0;
  exitStatus = 0;
  /** ms since the epoch; undefined while not exited. */
  exitedAt?: number;
  io?: ProcessIO;
  /** The agent's id for this process: the container id for init, a fresh UUID for an exec. */
  agentExecId: string;
  /** A ResizePty that came before the exec started. */
  pendingResize?: { width: number; height: number };
  private resolveExit!: () => void;
  /** Settles when the process has exited and its output is drained. */
  readonly exited: Promise<void>;

  constructor(
    readonly containerId: TaskId,
    readonly execId: ExecId,
    readonly stdio: StdioStrings,
    /** OCI process (JSON) of an exec. */
    readonly spec?: unknown,
  ) {
    this.sm = new StateMachine(execId ? `exec ${execId} of task ${containerId}` : `task ${containerId}`);
    this.agentExecId = execId ? '' : containerId;
    this.exited = new Promise((r) => { this.resolveExit = r; });
  }

  get isInit(): boolean { return this.execId === ''; }
  get state(): ProcState { return this.sm.state; }
  get done(): boolean { return this.state === 'stopped' || this.state === 'deleted'; }

  /** Records the exit once; false if it had already exited. */
  markExited(status: number, at = Date.now()): boolean {
    if (this.done) return false;
    this.exitStatus = status;
    this.exitedAt = at;
    this.sm.step('exit');
    this.resolveExit();
    return true;
  }
}

export interface Container {
  readonly id: TaskId;
  readonly bundle: string;
  readonly spec: any;
  readonly rootfs: { type: string; source: string; target?: string; options: string[] }[];
  readonly init: Proc;
  readonly execs: Map<string, Proc>;
  /** True for the container whose id is the sandbox's (its Delete stops the VM). */
  readonly isSandbox: boolean;
  /** The rootfs was shared into the VM (to unshare on delete). */
  rootfsShared: boolean;
}
