// Outages a test can cause without touching the shared services: a TCP proxy in front of one
// (cut it and nothing answers on its port; restore it and the same port answers again) and
// a Redis server of the test's own. Plus spawning a bin/ process the way `npm start` does.
import net from 'node:net';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

export interface TcpProxy {
  port: number;
  /** Drops every connection and stops listening: like the service's immediate stop. */
  cut(): Promise<void>;
  /** Cuts as soon as any client sends something (that request is lost): a stop mid-query. */
  cutOnNextRequest(): Promise<void>;
  /** Listens on the same port again: the service is back. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function tcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let armed: (() => void) | null = null;
  const port = await freePort();

  const listen = () => new Promise<void>((resolve, reject) => {
    const s = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      sockets.add(client).add(upstream);
      const drop = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.on('data', (chunk) => {
        if (armed) {
          const fire = armed;
          armed = null;
          void proxy.cut().then(fire);
          return;
        }
        upstream.write(chunk);
      });
      upstream.pipe(client);
    });
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => { server = s; resolve(); });
  });

  const proxy: TcpProxy = {
    port,
    async cut() {
      const s = server;
      server = null;
      for (const sock of sockets) sock.destroy();
      sockets.clear();
      if (s) await new Promise((r) => s.close(r));
    },
    cutOnNextRequest() {
      return new Promise<void>((resolve) => { armed = resolve; });
    },
    async restore() {
      if (!server) await listen();
    },
    async close() {
      armed = null;
      await proxy.cut();
    },
  };
  await listen();
  return proxy;
}

/** A Redis server of the test's own, on a spare port, without persistence. */
export interface OwnRedis {
  port: number;
  url: string;
  /** SIGKILLs it: every connection drops and nothing listens (its data is gone). */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
}

export async function ownRedis(): Promise<OwnRedis> {
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const r: OwnRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      const p = proc;
      proc = null;
      if (!p || p.exitCode !== null) return;
      p.kill('SIGKILL');
      await new Promise((res) => p.once('exit', res));
    },
    async start() {
      proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      for (let i = 0; i < 100; i++) {
        if (await canConnect(port)) return;
        await new Promise((res) => setTimeout(res, 50));
      }
      throw new Error(`redis-server on ${port} did not start`);
    },
  };
  await r.start();
  return r;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** A bin/ process as `npm start` runs it; its logs go to the test's stderr at LOG_LEVEL warn. */
export function spawnBin(name: string, env: Record<string, string>): ChildProcess & { exited: Promise<{ code: number | null; signal: string | null }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', `bin/${name}.ts`], {
    cwd: root, env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return Object.assign(child, { exited });
}

/** The shared Postgres's address with its host and port replaced (to go through a proxy). */
export function databaseUrlVia(databaseUrl: string, port: number): string {
  const u = new URL(databaseUrl);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

/** The bin/ processes a process started, by pid and command line (not tsx's esbuild service). */
export function childrenOf(pid: number): { pid: number; args: string }[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' });
  } catch { /* none */ }
  return out.trim().split('\n').filter(Boolean).map((l) => {
    const m = /^\s*(\d+)\s+(.*)$/.exec(l)!;
    return { pid: Number(m[1]), args: m[2]! };
  }).filter((c) => /bin\/[\w-]+\.ts/.test(c.args));
}

export interface NpmStart {
  proc: ChildProcess;
  /** The API's base URL. */
  api: string;
  exited: Promise<number | null>;
  /** Resolves once it printed that the ledger is running and the API answers /health. */
  up(timeoutMs?: number): Promise<void>;
  /** SIGKILLs it and every process it runs (a test's teardown). */
  kill(): void;
}

/** `npm start` (bin/start.ts) in a test's namespace, on spare ports. */
export async function npmStart(env: Record<string, string> & { LEDGER_NAMESPACE: string }): Promise<NpmStart> {
  const [apiPort, providerPort, reconcilerPort] = [await freePort(), await freePort(), await freePort()];
  const proc = spawn(process.execPath, ['--import', 'tsx', 'bin/start.ts'], {
    cwd: root, stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, API_PORT: String(apiPort), PROVIDER_PORT: String(providerPort), RECONCILER_PORT: String(reconcilerPort), LOG_LEVEL: 'warn', ...env },
  });
  let printed = '';
  proc.stdout!.on('data', (d) => { printed += d; });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const api = `http://127.0.0.1:${apiPort}`;
  return {
    proc, api, exited,
    async up(timeoutMs = 90_000) {
      const deadline = Date.now() + timeoutMs;
      while (!(printed.includes('Hongbao Ledger is running') && (await fetch(`${api}/health`).then((r) => r.ok, () => false)))) {
        if (proc.exitCode !== null) throw new Error(`npm start exited (${proc.exitCode})`);
        if (Date.now() > deadline) throw new Error('npm start did not come up');
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    kill() {
      for (const c of childrenOf(proc.pid!)) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
      proc.kill('SIGKILL');
    },
  };
}
