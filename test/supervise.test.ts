// `npm start` keeps its processes running (issue 17): a child that dies is restarted with
// backoff and the others carry on; only a stop ends them. bin/start.ts runs the ledger's
// processes under this supervisor; here it runs small stand-ins, to be quick.
import t from 'tap';
import { Supervisor } from '../bin/supervise.ts';
import { startTestLedger } from './helpers/ledger.ts';
import { childrenOf, npmStart } from './helpers/outages.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

// Runs until SIGTERM, then exits cleanly (as the bin/ processes do).
const steady = ['-e', `process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000);`];
// Dies by itself shortly after it starts, every time.
const flaky = ['-e', `setTimeout(() => process.exit(3), 50);`];

function capture() {
  const lines: { msg: string; fields: Record<string, unknown>; at: number }[] = [];
  const put = (msg: string, fields: Record<string, unknown> = {}) => { lines.push({ msg, fields, at: Date.now() }); };
  return { lines, log: { info: put, warn: put, error: put } };
}

async function until<T>(what: string, probe: () => T | undefined | false, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

t.test('a child that dies is restarted with growing backoff, and the others keep running', async (t) => {
  const { lines, log } = capture();
  const sup = new Supervisor([{ name: 'steady', args: steady }, { name: 'flaky', args: flaky }, { name: 'victim', args: steady }], {
    cwd: process.cwd(), env: process.env, log, baseMs: 100, capMs: 800,
  });
  t.teardown(() => sup.kill());
  const steadyPid = await until('steady running', () => sup.pid('steady'));
  const victimPid = await until('victim running', () => sup.pid('victim'));

  process.kill(victimPid, 'SIGKILL');
  const newVictim = await until('victim restarted', () => { const p = sup.pid('victim'); return p !== undefined && p !== victimPid && p; });
  t.ok(alive(newVictim), `a SIGKILLed child is running again (pid ${victimPid} → ${newVictim})`);

  await until('flaky restarted 4 times', () => sup.restarts('flaky') >= 4, 15_000);
  const delays = lines.filter((l) => l.msg === 'child exited; restarting it' && l.fields.child === 'flaky').map((l) => l.fields.inMs as number);
  t.same(delays.slice(0, 4), [100, 200, 400, 800], `a child that keeps dying backs off: ${delays.join(', ')} ms`);
  t.match(lines.find((l) => l.fields.child === 'victim'), { msg: 'child exited; restarting it', fields: { signal: 'SIGKILL' } }, 'the exit is logged with its cause');
  t.equal(sup.pid('steady'), steadyPid, 'the steady child was never touched');
  t.ok(alive(steadyPid), 'and is running');

  await sup.stop();
  t.notOk(alive(steadyPid), 'stop() ends the children');
  t.notOk(alive(newVictim), 'all of them');
  const restarts = sup.restarts('flaky');
  await sleep(1_000);
  t.equal(sup.restarts('flaky'), restarts, 'and nothing is restarted after a stop');
  t.equal(sup.pid('flaky'), undefined, 'nothing runs');
});

t.test('stop() kills a child that does not stop on SIGTERM within the grace period', async (t) => {
  const { log } = capture();
  const stubborn = ['-e', `process.on('SIGTERM', () => {}); setInterval(() => {}, 1000);`];
  const sup = new Supervisor([{ name: 'stubborn', args: stubborn }], { cwd: process.cwd(), env: process.env, log, graceMs: 300 });
  t.teardown(() => sup.kill());
  const pid = await until('stubborn running', () => sup.pid('stubborn'));
  await sleep(300); // let it install its SIGTERM handler
  const started = Date.now();
  await sup.stop();
  t.notOk(alive(pid), `killed after the grace period (${Date.now() - started} ms)`);
});

t.test('npm start: a process that dies is restarted and the rest keep serving; SIGTERM stops everything', async (t) => {
  const l = await startTestLedger(t, { projector: false }); // the namespace, and its removal afterwards
  const start = await npmStart({ LEDGER_NAMESPACE: l.ns });
  t.teardown(() => start.kill());
  await start.up();
  const healthy = () => fetch(`${start.api}/health`).then((r) => r.ok, () => false);
  const before = childrenOf(start.proc.pid!);
  t.equal(before.length, 8, `it runs 8 processes: ${before.map((c) => /bin\/([\w-]+)\.ts/.exec(c.args)?.[1]).join(', ')}`);

  const projector = before.find((c) => c.args.includes('bin/projector.ts'))!;
  process.kill(projector.pid, 'SIGKILL');
  const again = await l.waitFor('the projector restarted', async () => childrenOf(start.proc.pid!).find((c) => c.args.includes('bin/projector.ts') && c.pid !== projector.pid), 30_000);
  t.ok(again, `the killed projector runs again (pid ${projector.pid} → ${again.pid})`);
  t.equal(start.proc.exitCode, null, 'npm start is still running');
  t.ok(await healthy(), 'the API kept serving');
  const others = before.filter((c) => c.pid !== projector.pid);
  t.same(others.filter((c) => childrenOf(start.proc.pid!).some((n) => n.pid === c.pid)).length, 7, 'the other 7 processes were not restarted');

  start.proc.kill('SIGTERM');
  t.equal(await start.exited, 0, 'SIGTERM stops npm start cleanly');
  const all = [...before, again];
  await l.waitFor('every process gone', async () => all.every((c) => { try { process.kill(c.pid, 0); return false; } catch { return true; } }), 15_000);
  t.pass('and every process it ran');
});
