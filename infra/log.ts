/** Structured logs: one JSON object per line on stderr, so stdout stays for program output. */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const threshold = order[(process.env.LOG_LEVEL as Level) ?? 'info'] ?? 20;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function logger(base: Record<string, unknown> = {}): Logger {
  const write = (level: Level) => (msg: string, fields: Record<string, unknown> = {}) => {
    if (order[level] < threshold) return;
    const err = fields.err instanceof Error ? { err: { message: fields.err.message, stack: fields.err.stack } } : {};
    process.stderr.write(JSON.stringify({ t: new Date().toISOString(), level, msg, ...base, ...fields, ...err }) + '\n');
  };
  return {
    debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error'),
    child: (fields) => logger({ ...base, ...fields }),
  };
}
