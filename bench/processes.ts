import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../infra/config.ts';
import { openRuntime, setupNamespace } from '../infra/runtime.ts';
import { generateSigningKeyPem } from '../domain/tokens.ts';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The ledger's processes a benchmark phase runs (tsx entry points), stopped together at its end. */
export function processGroup(env: NodeJS.ProcessEnv) {
  const children: ChildProcess[] = [];
  return {
    run(script: string, extra: Record<string, string> = {}): ChildProcess {
      // BENCH_PROFILE=<dir>: the API writes a V8 CPU profile there when it stops (NODE_OPTIONS may not carry --cpu-prof).
      const profile = process.env.BENCH_PROFILE && script === 'bin/api.ts' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
      const c = spawn(process.execPath, [...profile, '--import', 'tsx', script], { cwd: root, env: { ...env, ...extra }, stdio: ['ignore', 'ignore', 'inherit'] });
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

/** A throwaway namespace for one benchmark, an upstream key and admin token, and the environment its processes run with. */
export async function benchNamespace(prefix: string, ports: { api: number; bare: number }) {
  const ns = `${prefix}_${Date.now().toString(36)}`;
  await setupNamespace(loadConfig({ namespace: ns }));
  const rt = await openRuntime(prefix, { namespace: ns }, 20);
  const upstream = { id: 'bench', secret: randomBytes(16).toString('hex') };
  const adminToken = randomBytes(16).toString('hex');
  const env = {
    ...process.env, LEDGER_NAMESPACE: ns, API_PORT: String(ports.api), PORT: String(ports.bare), LOG_LEVEL: 'warn',
    UPSTREAM_KEYS: `${upstream.id}=${upstream.secret}`, ADMIN_TOKEN: adminToken, TOKEN_SIGNING_KEY: generateSigningKeyPem(),
  };
  return { ns, rt, upstream, adminToken, env };
}
