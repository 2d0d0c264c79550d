/**
 * A circuit breaker as a pure state machine, so its rules can be property-tested:
 *
 *   closed ──(failureThreshold consecutive failures)──▶ open
 *   open ──(openMs elapsed)──▶ half-open: exactly one probe call is let through
 *   half-open ──probe succeeds──▶ closed     half-open ──probe fails──▶ open again
 *
 * Each processor instance keeps its own breaker (the usual practice): instances learn of
 * a failing downstream independently, and the shared rate limit still bounds the total.
 */
export type BreakerState =
  | { mode: 'closed'; failures: number }
  | { mode: 'open'; until: number }
  | { mode: 'half-open'; probing: boolean };

export interface BreakerConfig {
  failureThreshold: number;
  openMs: number;
}

export const initialBreaker: BreakerState = { mode: 'closed', failures: 0 };

/** May a call start now? If so, the state to keep (a half-open breaker marks its probe taken). */
export function acquire(state: BreakerState, now: number): { allowed: true; state: BreakerState } | { allowed: false; state: BreakerState; retryInMs: number } {
  switch (state.mode) {
    case 'closed':
      return { allowed: true, state };
    case 'open':
      if (now < state.until) return { allowed: false, state, retryInMs: state.until - now };
      return { allowed: true, state: { mode: 'half-open', probing: true } };
    case 'half-open':
      if (state.probing) return { allowed: false, state, retryInMs: 50 };
      return { allowed: true, state: { mode: 'half-open', probing: true } };
  }
}

/** The outcome of a call that was allowed. */
export function record(state: BreakerState, ok: boolean, now: number, cfg: BreakerConfig): BreakerState {
  switch (state.mode) {
    case 'closed':
      if (ok) return state.failures === 0 ? state : { mode: 'closed', failures: 0 };
      return state.failures + 1 >= cfg.failureThreshold ? { mode: 'open', until: now + cfg.openMs } : { mode: 'closed', failures: state.failures + 1 };
    case 'half-open':
      return ok ? { mode: 'closed', failures: 0 } : { mode: 'open', until: now + cfg.openMs };
    case 'open':
      // A call that started before the breaker opened: its success is evidence of recovery.
      return ok ? { mode: 'closed', failures: 0 } : state;
  }
}

export class CircuitBreaker {
  state: BreakerState = initialBreaker;
  opened = 0;

  constructor(private readonly cfg: BreakerConfig, private readonly now: () => number = Date.now) {}

  tryAcquire(): { allowed: true } | { allowed: false; retryInMs: number } {
    const r = acquire(this.state, this.now());
    this.state = r.state;
    return r.allowed ? { allowed: true } : { allowed: false, retryInMs: r.retryInMs };
  }

  record(ok: boolean): void {
    const before = this.state.mode;
    this.state = record(this.state, ok, this.now(), this.cfg);
    if (this.state.mode === 'open' && before !== 'open') this.opened++;
  }
}
