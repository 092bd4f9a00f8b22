// runc, run the way a guest agent uses it: a private --root, `create`/`exec --detach` under the
// guest init helper (init.ts), short commands for kill/pause/resume/update/events/delete.
import { execFile, spawn, type ChildProcess } from 'node:child_process';

export const runcPath = process.env.KATA_AGENT_SIM_RUNC || '/usr/sbin/runc';

export interface RuncResult { code: number; stdout: string; stderr: string }

export class Runc {
  constructor(readonly root: string) {}

  /** Runs a short runc command; resolves with its result whatever the status. */
  run(args: string[], input?: string): Promise<RuncResult> {
    return new Promise((resolve) => {
      const c = execFile(runcPath, ['--root', this.root, ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
      if (input !== undefined) c.stdin!.end(input);
    });
  }

  /** Like run(), but throws an Error carrying runc's own message when it fails. */
  async must(args: string[], input?: string): Promise<string> {
    const r = await this.run(args, input);
    if (r.code !== 0) throw new Error(`runc ${args[0]}: ${lastMessage(r.stderr) || `exit status ${r.code}`}`);
    return r.stdout;
  }

  /** The argv of a foreground runc command (for spawning with custom stdio). */
  argv(args: string[]): string[] {
    return [runcPath, '--root', this.root, ...args];
  }

  spawn(args: string[], stdio: ('pipe' | 'ignore')[]): ChildProcess {
    return spawn(runcPath, ['--root', this.root, ...args], { stdio });
  }
}

/** runc's error text: the msg of its last logrus line, or the last line. */
export function lastMessage(stderr: string): string {
  const lines = stderr.trim().split('\n').filter(Boolean);
  const last = lines[lines.length - 1] ?? '';
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(last);
  return m ? m[1].replace(/\\"/g, '"') : last;
}
