import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * Every error answer has the same shape: a stable machine-readable `code`, a sentence a
 * person can act on, and optional details. Client mistakes are 4xx; a 5xx means we failed.
 */
export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: unknown) {
    super(message);
  }
}

interface AjvError { instancePath: string; keyword: string; message?: string; params: Record<string, unknown> }

/** What a person calls each part of a request. */
export const PART_NAMES: Record<string, string> = { body: 'request body', querystring: 'query string', params: 'path', headers: 'request headers' };

function describeValidation(errors: AjvError[], context: string): ErrorBody {
  const details = errors.map((e) => {
    const path = e.instancePath || '/';
    if (e.keyword === 'additionalProperties') return { path, problem: `unknown field "${String(e.params.additionalProperty)}"` };
    if (e.keyword === 'required') return { path, problem: `missing required field "${String(e.params.missingProperty)}"` };
    return { path, problem: e.message ?? e.keyword };
  });
  const first = errors[0]!;
  let code = 'INVALID_FIELD';
  if (first.keyword === 'additionalProperties') code = 'UNKNOWN_FIELD';
  else if (first.keyword === 'required') code = 'MISSING_FIELD';
  else if (/\/amount$/.test(first.instancePath)) code = 'INVALID_AMOUNT';
  const where = PART_NAMES[context] ?? context;
  return { code, message: `The ${where} is invalid: ${details.map((d) => `${d.path} ${d.problem}`).join('; ')}`, details };
}

type Dependency = 'postgres' | 'redis' | 'kafka' | 'network';

// SQLSTATE classes and codes that mean Postgres is unreachable, restarting or out of room,
// not that the request was wrong: 08 connection exception, 53 insufficient resources, 58
// system error, 57P01-57P03 shutdown / cannot connect now.
const PG_OUTAGE_CLASSES = new Set(['08', '53', '58']);
const PG_OUTAGE_CODES = new Set(['57P01', '57P02', '57P03']);
// node-postgres reports a dropped or unobtainable connection with these messages and no code.
const PG_CLIENT_OUTAGE = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable|Cannot use a pool after calling end)/;
// Socket errors from any client: which service it was is in the log, not in the answer.
const SOCKET_OUTAGE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);
// ioredis: retries used up or the connection gone; Redis replies that mean "not now".
const REDIS_CLIENT_OUTAGE = /^(Connection is closed|Stream isn't writeable)/;
const REDIS_REPLY_OUTAGE = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOREPLICAS|OOM)\b/;

function outageOf(e: { name?: unknown; code?: unknown; message?: unknown }): Dependency | null {
  const name = typeof e.name === 'string' ? e.name : '';
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : '';
  if (name.startsWith('KafkaJS') || name === 'KafkaNotConnected') return 'kafka';
  if (name === 'MaxRetriesPerRequestError' || REDIS_CLIENT_OUTAGE.test(message)) return 'redis';
  if (name === 'ReplyError' && REDIS_REPLY_OUTAGE.test(message)) return 'redis';
  if (/^[0-9A-Z]{5}$/.test(code) && (PG_OUTAGE_CLASSES.has(code.slice(0, 2)) || PG_OUTAGE_CODES.has(code))) return 'postgres';
  if (PG_CLIENT_OUTAGE.test(message)) return 'postgres';
  if (SOCKET_OUTAGE.has(code)) return 'network';
  return null;
}

/**
 * Whether an error is a dependency being down (Postgres, Redis, Kafka or the network to
 * them) rather than a bug: such a request can be retried as it is. Follows `cause` chains
 * and AggregateErrors (a refused dual-stack connect reports one per address).
 */
export function dependencyOutage(err: unknown): Dependency | null {
  const queue: unknown[] = [err];
  for (let seen = 0; queue.length > 0 && seen < 16; seen++) {
    const e = queue.shift();
    if (typeof e !== 'object' || e === null) continue;
    const found = outageOf(e);
    if (found) return found;
    const { cause, errors } = e as { cause?: unknown; errors?: unknown };
    if (cause !== undefined) queue.push(cause);
    if (Array.isArray(errors)) queue.push(...errors);
  }
  return null;
}

/** How long a client is asked to wait before retrying after a dependency outage. */
export const OUTAGE_RETRY_AFTER_SEC = 2;

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError & { validation?: AjvError[]; validationContext?: string }, req, reply) => {
    // Every 5xx leaves a trace: which request (its id), which route, and the stack.
    const trace = (status: number, code: string, dependency?: Dependency) => {
      const fields = { status, code, method: req.method, route: req.routeOptions.url ?? null, url: req.url, ...(dependency ? { dependency } : {}), err };
      if (status === 500) req.log.error(fields, 'request failed');
      else req.log.warn(fields, 'request answered unavailable');
    };
    if (err instanceof ApiError) {
      const retryAfterMs = (err.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
      if (typeof retryAfterMs === 'number') void reply.header('retry-after', String(Math.ceil(retryAfterMs / 1000)));
      if (err.status >= 500) trace(err.status, err.code);
      return reply.status(err.status).send({ code: err.code, message: err.message, ...(err.details === undefined ? {} : { details: err.details }) });
    }
    if (err.validation) return reply.status(400).send(describeValidation(err.validation, err.validationContext ?? 'request'));
    switch (err.code) {
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.status(400).send({ code: 'MALFORMED_JSON', message: 'The request body is not valid JSON.' });
      case 'FST_ERR_CTP_BODY_TOO_LARGE': {
        // The route's own limit: some routes (campaign configurations) allow more than the default.
        const limit = req.routeOptions.bodyLimit ?? app.initialConfig.bodyLimit ?? 0;
        return reply.status(413).send({ code: 'BODY_TOO_LARGE', message: `The request body is larger than the ${limit} bytes (${formatBytes(limit)}) this route accepts.`, details: { limit } });
      }
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.status(415).send({ code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Send the request body as application/json.' });
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return reply.status(400).send({ code: 'INVALID_CONTENT_LENGTH', message: 'The Content-Length header does not match the body.' });
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ code: 'BAD_REQUEST', message: err.message });
    }
    const dependency = dependencyOutage(err);
    if (dependency) {
      trace(503, 'DEPENDENCY_UNAVAILABLE', dependency);
      void reply.header('retry-after', String(OUTAGE_RETRY_AFTER_SEC));
      return reply.status(503).send({ code: 'DEPENDENCY_UNAVAILABLE', message: `A service the ledger depends on is unavailable right now; retry in ${OUTAGE_RETRY_AFTER_SEC} s (with the same idempotency key, order number or draw id).` });
    }
    trace(500, 'INTERNAL');
    return reply.status(500).send({ code: 'INTERNAL', message: 'Something went wrong on our side; the request may be retried with the same idempotency key.' });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ code: 'ROUTE_NOT_FOUND', message: `There is no ${req.method} ${req.url.split('?')[0]}.` });
  });
}

/**
 * Fastify answers a URL it cannot route (bad percent-encoding, an overlong path segment) before
 * any handler runs, in its own shape; this gives those answers ours. Passed to Fastify() as
 * `frameworkErrors`.
 */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  if (err.code === 'FST_ERR_BAD_URL') {
    void reply.status(400).send({ code: 'MALFORMED_URL', message: 'The URL path is not valid: a percent-encoding in it is not UTF-8 text.' });
  } else if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    void reply.status(414).send({ code: 'URL_TOO_LONG', message: 'A part of the URL path is longer than any id this API takes.' });
  } else {
    void reply.status(err.statusCode && err.statusCode < 500 ? err.statusCode : 400).send({ code: 'BAD_REQUEST', message: err.message });
  }
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

export const errorResponse = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} },
} as const;
