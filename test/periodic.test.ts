// Keepers' rounds back off while a dependency is down (issue 17), and keep their pace otherwise.
import t from 'tap';
import { Periodic } from '../streams/periodic.ts';

t.test('failed rounds are retried after a doubling delay; a success restores the interval', async (t) => {
  const at: number[] = [];
  const errors: unknown[] = [];
  let done: () => void;
  const finished = new Promise<void>((r) => { done = r; });
  const outcomes = ['fail', 'fail', 'fail', 'ok', 'ok'];
  const p = new Periodic(async () => {
    at.push(Date.now());
    const outcome = outcomes[at.length - 1];
    if (at.length === outcomes.length) done();
    if (outcome === 'fail') throw new Error(`round ${at.length} failed`);
  }, (err) => errors.push(err));
  p.start(50);
  await finished;
  await p.stop();
  const gaps = at.slice(1).map((x, i) => x - at[i]!);
  t.equal(errors.length, 3, 'every failure is reported');
  // After failures 1, 2, 3: 100, 200, 400 ms; after a success: the 50 ms interval.
  const expected = [100, 200, 400, 50];
  t.ok(gaps.every((g, i) => g >= expected[i]! - 5 && g < expected[i]! + 150), `gaps ${gaps.join(', ')} ms, expected about ${expected.join(', ')}`);
});
