import t from 'tap';
import fc from 'fast-check';
import { acquire, initialBreaker, record, type BreakerState } from '../../streams/circuit-breaker.ts';

const cfg = { failureThreshold: 3, openMs: 1000 };

t.test('opens after the threshold of consecutive failures, probes once, closes on success', async (t) => {
  let s: BreakerState = initialBreaker;
  for (let i = 0; i < 2; i++) s = record(s, false, 0, cfg);
  t.equal(s.mode, 'closed', 'two failures are not enough');
  s = record(s, true, 0, cfg);
  for (let i = 0; i < 2; i++) s = record(s, false, 0, cfg);
  t.equal(s.mode, 'closed', 'a success resets the count');
  s = record(s, false, 100, cfg);
  t.same(s, { mode: 'open', until: 1100 });
  t.equal(acquire(s, 1099).allowed, false, 'no calls while open');
  const probe = acquire(s, 1100);
  t.equal(probe.allowed, true, 'one probe once the open period is over');
  t.equal(acquire(probe.state, 1101).allowed, false, 'and only one');
  t.same(record(probe.state, false, 1200, cfg), { mode: 'open', until: 2200 }, 'a failed probe opens it again');
  t.same(record(probe.state, true, 1200, cfg), { mode: 'closed', failures: 0 }, 'a good probe closes it');
});

// Model check: any interleaving of call attempts, outcomes and time.
const steps = fc.array(fc.oneof(
  fc.record({ kind: fc.constant('call' as const), ok: fc.boolean() }),
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 1500 }) }),
), { maxLength: 80 });

t.test('property: never lets a call through while open, at most one probe, opens exactly at the threshold', async (t) => {
  fc.assert(fc.property(steps, (list) => {
    let s: BreakerState = initialBreaker;
    let now = 0;
    let streak = 0;
    let inFlightProbe = false;
    for (const step of list) {
      if (step.kind === 'wait') {
        now += step.ms;
        continue;
      }
      const before = s;
      const r = acquire(s, now);
      if (before.mode === 'open' && now < before.until && r.allowed) return false;
      if (before.mode === 'half-open' && before.probing && r.allowed) return false;
      s = r.state;
      if (!r.allowed) continue;
      inFlightProbe = s.mode === 'half-open';
      s = record(s, step.ok, now, cfg);
      if (inFlightProbe && s.mode === 'half-open') return false; // a probe always resolves the half-open state
      streak = step.ok ? 0 : streak + 1;
      if (before.mode === 'closed' && !step.ok && (s.mode === 'open') !== (streak >= cfg.failureThreshold)) return false;
      if (s.mode === 'open') streak = 0;
    }
    return true;
  }), { numRuns: 500 });
  t.pass('500 random histories');
});
