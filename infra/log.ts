import pino from 'pino';

/**
 * Structured logs: one JSON object per line on stderr, so stdout stays for program output.
 * pino underneath (fastify logs through the same instance, so a request's lines carry its
 * id); the call shape every process uses stays `log.info(msg, fields)`.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
  /** The pino logger itself, for libraries that take one (fastify's loggerInstance). */
  readonly pino: pino.Logger;
}

// An unknown LOG_LEVEL must not stop a process from starting (pino throws on one).
const wanted = process.env.LOG_LEVEL;
const level = wanted !== undefined && wanted in pino.levels.values ? wanted : 'info';

let root: pino.Logger | undefined;
function rootLogger(): pino.Logger {
  root ??= pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Level names, not numbers: the lines are read by people and grep as often as by tools.
      formatters: { level: (label) => ({ level: label }) },
    },
    // Synchronous: the lines that matter most are written just before a process dies.
    pino.destination({ dest: 2, sync: true }),
  );
  return root;
}

function wrap(p: pino.Logger): Logger {
  return {
    debug: (msg, fields = {}) => p.debug(fields, msg),
    info: (msg, fields = {}) => p.info(fields, msg),
    warn: (msg, fields = {}) => p.warn(fields, msg),
    error: (msg, fields = {}) => p.error(fields, msg),
    child: (fields) => wrap(p.child(fields)),
    pino: p,
  };
}

export function logger(base: Record<string, unknown> = {}): Logger {
  return wrap(rootLogger().child(base));
}
