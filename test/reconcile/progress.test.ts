import t from 'tap';
import { progressBar } from '../../reconcile/progress.ts';

t.test('the progress bar shows share, counts, rate and ETA on a terminal, and nothing elsewhere', async (t) => {
  let out = '';
  const tty = { isTTY: true, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
  const bar = progressBar(tty);
  await new Promise((r) => setTimeout(r, 120));
  bar.update(250_000, 1_000_000);
  bar.end();
  t.match(out, /\[#{7}\.{21}\]  25% 250,000\/1,000,000 events  [\d,]+\/s  ETA \d+s/);
  t.match(out, /\n$/);

  let piped = '';
  const pipe = { isTTY: false, write: (s: string) => ((piped += s), true) } as unknown as NodeJS.WriteStream;
  const quiet = progressBar(pipe);
  quiet.update(1, 2);
  quiet.end();
  t.equal(piped, '', 'no progress bar in logs or CI');
});
