import { Pool } from 'undici';

export interface LoadResult {
  requests: number;
  errors: number;
  statusCounts: Record<string, number>;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
}

/**
 * A closed-loop load generator: `concurrency` workers each send a request, wait for the
 * answer, and send the next, for `durationMs`. Latency is per request, in milliseconds.
 */
export async function runLoad(opts: {
  origin: string;
  durationMs: number;
  concurrency: number;
  request: (i: number) => { method: 'GET' | 'POST'; path: string; body?: string; headers?: Record<string, string> };
  ok?: (status: number) => boolean;
}): Promise<LoadResult> {
  const pool = new Pool(opts.origin, { connections: opts.concurrency, pipelining: 1 });
  const ok = opts.ok ?? ((s) => s >= 200 && s < 300);
  const latencies: number[] = [];
  const statusCounts: Record<string, number> = {};
  let errors = 0;
  let i = 0;
  const start = performance.now();
  const end = start + opts.durationMs;
  await Promise.all(Array.from({ length: opts.concurrency }, async () => {
    while (performance.now() < end) {
      const req = opts.request(i++);
      const t0 = performance.now();
      try {
        const res = await pool.request({ method: req.method, path: req.path, body: req.body, headers: req.headers });
        await res.body.dump();
        statusCounts[res.statusCode] = (statusCounts[res.statusCode] ?? 0) + 1;
        if (!ok(res.statusCode)) errors++;
      } catch {
        errors++;
        statusCounts.error = (statusCounts.error ?? 0) + 1;
      }
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  await pool.close();
  return summarise(latencies, errors, statusCounts, seconds);
}

/** Rate and latency percentiles of one closed-loop run. */
export function summarise(latencies: number[], errors: number, statusCounts: Record<string, number>, seconds: number): LoadResult {
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  return { requests: latencies.length, errors, statusCounts, seconds, rps: latencies.length / seconds, p50: pct(0.5), p99: pct(0.99) };
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Peak resident memory (VmHWM) of a process, in MiB, from /proc. */
export async function peakRssMiB(pid: number): Promise<number | null> {
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}
