import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The ledger's processes a benchmark phase runs (tsx entry points), stopped together at its end. */
export function processGroup(env: NodeJS.ProcessEnv) {
  const children: ChildProcess[] = [];
  return {
    run(script: string, extra: Record<string, string> = {}): ChildProcess {
      const c = spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, env: { ...env, ...extra }, stdio: ['ignore', 'ignore', 'inherit'] });
      children.push(c);
      return c;
    },
    async stopAll(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
      for (const c of children) if (c.exitCode === null) c.kill(signal);
      await Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))));
    },
  };
}

export async function stopProcess(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  c.kill('SIGTERM');
  await new Promise((r) => c.once('exit', r));
}

/** Waits until a URL answers below 500 (the process is up). */
export async function waitHttp(url: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (await fetch(url).then((r) => r.status < 500, () => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not come up`);
}
