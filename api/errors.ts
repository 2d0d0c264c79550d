import type { FastifyError, FastifyInstance } from 'fastify';

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
  const where = context === 'body' ? 'request body' : context;
  return { code, message: `The ${where} is invalid: ${details.map((d) => `${d.path} ${d.problem}`).join('; ')}`, details };
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError & { validation?: AjvError[]; validationContext?: string }, req, reply) => {
    if (err instanceof ApiError) {
      const retryAfterMs = (err.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
      if (typeof retryAfterMs === 'number') void reply.header('retry-after', String(Math.ceil(retryAfterMs / 1000)));
      return reply.status(err.status).send({ code: err.code, message: err.message, ...(err.details === undefined ? {} : { details: err.details }) });
    }
    if (err.validation) return reply.status(400).send(describeValidation(err.validation, err.validationContext ?? 'request'));
    switch (err.code) {
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.status(400).send({ code: 'MALFORMED_JSON', message: 'The request body is not valid JSON.' });
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.status(413).send({ code: 'BODY_TOO_LARGE', message: `The request body is larger than the ${app.initialConfig.bodyLimit} bytes allowed.` });
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.status(415).send({ code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Send the request body as application/json.' });
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return reply.status(400).send({ code: 'INVALID_CONTENT_LENGTH', message: 'The Content-Length header does not match the body.' });
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ code: 'BAD_REQUEST', message: err.message });
    }
    req.log.error({ err }, 'unhandled error');
    return reply.status(500).send({ code: 'INTERNAL', message: 'Something went wrong on our side; the request may be retried with the same idempotency key.' });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ code: 'ROUTE_NOT_FOUND', message: `There is no ${req.method} ${req.url.split('?')[0]}.` });
  });
}

export const errorResponse = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} },
} as const;
