// Keeps `npm start`'s processes running: one that exits, for whatever reason, is started
// again after a backoff, and the others carry on. Only stop() ends them.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../infra/log.ts';

export interface ChildSpec {
  name: string;
  /** Arguments to this Node binary, e.g. ['--import', 'tsx', 'bin/api.ts']. */
  args: string[];
}

export interface SuperviseOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** The first restart's delay, doubled for each exit in a row up to capMs. */
  baseMs?: number;
  capMs?: number;
  /** A child that ran this long before it exited is restarted after baseMs again. */
  stableMs?: number;
  /** How long stop() lets children shut down cleanly before it SIGKILLs them. */
  graceMs?: number;
}

interface Slot {
  spec: ChildSpec;
  child: ChildProcess | null;
  startedAt: number;
  failures: number;
  timer: NodeJS.Timeout | null;
  restarts: number;
}

export class Supervisor {
  private readonly slots: Slot[];
  private stopping = false;
  private readonly baseMs: number;
  private readonly capMs: number;
  private readonly stableMs: number;
  private readonly graceMs: number;

  constructor(specs: ChildSpec[], private readonly opts: SuperviseOptions) {
    this.baseMs = opts.baseMs ?? 1_000;
    this.capMs = opts.capMs ?? 30_000;
    this.stableMs = opts.stableMs ?? 60_000;
    this.graceMs = opts.graceMs ?? 10_000;
    this.slots = specs.map((spec) => ({ spec, child: null, startedAt: 0, failures: 0, timer: null, restarts: 0 }));
    for (const slot of this.slots) this.run(slot);
  }

  /** The running child's pid (undefined while it waits to restart). */
  pid(name: string): number | undefined {
    return this.slot(name).child?.pid;
  }

  restarts(name: string): number {
    return this.slot(name).restarts;
  }

  private slot(name: string): Slot {
    const slot = this.slots.find((s) => s.spec.name === name);
    if (!slot) throw new Error(`no child named ${name}`);
    return slot;
  }

  private run(slot: Slot): void {
    // Its own process group: a Ctrl-C at the terminal reaches only the supervisor, which then
    // stops each child once, so each gets to leave its consumer group cleanly.
    const child = spawn(process.execPath, slot.spec.args, { cwd: this.opts.cwd, env: this.opts.env, stdio: 'inherit', detached: true });
    slot.child = child;
    slot.startedAt = Date.now();
    child.once('error', (err) => this.opts.log.error('child could not be started', { child: slot.spec.name, err }));
    child.once('exit', (code, signal) => {
      slot.child = null;
      if (this.stopping) return;
      const ranMs = Date.now() - slot.startedAt;
      slot.failures = ranMs >= this.stableMs ? 1 : slot.failures + 1;
      const inMs = Math.min(this.capMs, this.baseMs * 2 ** (slot.failures - 1));
      this.opts.log.error('child exited; restarting it', { child: slot.spec.name, code, signal, ranMs, inMs });
      slot.timer = setTimeout(() => {
        slot.timer = null;
        if (this.stopping) return;
        slot.restarts++;
        this.run(slot);
        this.opts.log.info('child restarted', { child: slot.spec.name, pid: slot.child?.pid });
      }, inMs);
    });
  }

  /** SIGTERMs every child (no more restarts) and waits for them; SIGKILLs any still running after the grace period. */
  async stop(): Promise<void> {
    this.stopping = true;
    const live: Promise<unknown>[] = [];
    for (const slot of this.slots) {
      if (slot.timer) clearTimeout(slot.timer);
      const child = slot.child;
      if (child && child.exitCode === null && child.signalCode === null) {
        live.push(new Promise((r) => child.once('exit', r)));
        child.kill('SIGTERM');
      }
    }
    const grace = setTimeout(() => {
      this.opts.log.warn('children still running after the grace period; killing them');
      this.kill();
    }, this.graceMs);
    await Promise.all(live);
    clearTimeout(grace);
  }

  /** SIGKILLs every child at once (a second Ctrl-C, or the supervisor itself exiting). */
  kill(): void {
    this.stopping = true;
    for (const slot of this.slots) {
      if (slot.timer) clearTimeout(slot.timer);
      slot.child?.kill('SIGKILL');
    }
  }
}
