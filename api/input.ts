import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { Ajv, type Options } from 'ajv';
import * as ajvFormats from 'ajv-formats';
import { isUuid } from '../domain/ids.ts';
import { isInstant } from '../domain/instants.ts';
import { MAX_AMOUNT } from '../domain/money.ts';
import { ApiError, PART_NAMES } from './errors.ts';

/**
 * Where request input enters, and the rules every route shares: a client's mistake, however
 * hostile, is a 4xx with a code here, never a 500 from Postgres later. One text rule for every
 * string of every request, integer bounds every route schema must declare, one uuid and one
 * date-time, and query strings read as the text they are.
 */

/** The largest value of a Postgres `int` column (versions, counts). */
export const PG_INT_MAX = 2 ** 31 - 1;

const ID_PATTERN = '^[A-Za-z0-9_.:-]+$';
const ID_RE = new RegExp(ID_PATTERN);

/** A user id: in a body, a path, and a user token's subject alike. */
export const userId = { type: 'string', minLength: 1, maxLength: 128, pattern: ID_PATTERN } as const;
export function isUserId(s: string): boolean {
  return s.length >= userId.minLength && s.length <= userId.maxLength && ID_RE.test(s);
}

/** An amount of money in minor units (fen): what an Avro long, a bigint and a JS number all hold. */
export const amount = { type: 'integer', minimum: 1, maximum: MAX_AMOUNT } as const;

/** A uuid as the ledger writes it (lowercase 8-4-4-4-12): what Postgres's uuid reads, and nothing else. */
export const uuid = { type: 'string', format: 'uuid' } as const;

/**
 * The text rule: no NUL (Postgres text and jsonb cannot hold it), no other control character
 * but tab and line breaks, no unpaired UTF-16 surrogate (not a character; not storable as
 * UTF-8). Checked for every string of every body, query and path, keys included.
 */
export function textProblem(s: string): string | null {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) {
      if (c === 0x09 || c === 0x0a || c === 0x0d) continue;
      return c === 0 ? 'contains U+0000 (NUL)' : `contains the control character U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
    }
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return 'contains an unpaired UTF-16 surrogate';
    }
    if (c >= 0xdc00 && c <= 0xdfff) return 'contains an unpaired UTF-16 surrogate';
  }
  return null;
}

const escapePointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** The first string (value or key) breaking the text rule, as a JSON Pointer; iterative, so no nesting depth can overflow the stack. */
export function findBadText(value: unknown): { path: string; problem: string } | null {
  const stack: [unknown, string][] = [[value, '']];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      const problem = textProblem(v);
      if (problem) return { path: path || '/', problem };
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${path}/${i}`]);
    } else if (typeof v === 'object' && v !== null) {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i]!;
        const problem = textProblem(key);
        if (problem) return { path: `${path}/${escapePointer(key.replace(/[^\x20-\x7e]/g, '?'))}`, problem: `has a field name that ${problem}` };
        if (key === '__proto__') return { path: `${path}/__proto__`, problem: 'is a field name no request may use' };
        stack.push([(v as Record<string, unknown>)[key], `${path}/${escapePointer(key)}`]);
      }
    }
  }
  return null;
}

const TEXT_RULE = 'text may not contain NUL, control characters other than tab and line breaks, or unpaired UTF-16 surrogates';

function checkText(part: 'params' | 'querystring' | 'body', value: unknown): void {
  const bad = findBadText(value);
  if (!bad) return;
  // The same shape as a schema's validation errors: where, and what is wrong there.
  throw new ApiError(400, 'INVALID_TEXT', `The ${PART_NAMES[part]} is invalid: ${bad.path} ${bad.problem}; ${TEXT_RULE}.`, [{ path: bad.path, problem: bad.problem }]);
}

// ajv-formats is CommonJS: under ESM its function is the namespace's default.
const addFormats = (ajvFormats as unknown as { default: ajvFormats.FormatsPlugin }).default;

function validatorAjv(options: Options): Ajv {
  // allErrors off: with it on, a crafted body makes validation do far more work (fastify's default too).
  const ajv = new Ajv({ useDefaults: true, removeAdditional: false, allErrors: false, addUsedSchema: false, ...options });
  addFormats(ajv);
  // ajv-formats' uuid passes "urn:uuid:…", which Postgres's uuid refuses; its date-time passes
  // leap seconds and offsets the ledger would misread. Ours are the ledger's own definitions.
  ajv.addFormat('uuid', { type: 'string', validate: isUuid });
  ajv.addFormat('date-time', { type: 'string', validate: isInstant });
  return ajv;
}

/** Keywords that bound a number from above / below. */
const bounded = (schema: Record<string, unknown>, keys: string[]) => keys.some((k) => typeof schema[k] === 'number' && Math.abs(schema[k] as number) <= Number.MAX_SAFE_INTEGER);

/**
 * Every integer or number a route accepts must say how large it may be: an unbounded one is
 * how 2^31 reached an int column, and 1e308 passes "integer". Checked when the route is
 * registered, so a route added later without bounds does not start.
 */
export function unboundedNumbers(schema: unknown, path = ''): string[] {
  if (typeof schema !== 'object' || schema === null) return [];
  const s = schema as Record<string, unknown>;
  const types = Array.isArray(s.type) ? s.type : [s.type];
  const out: string[] = [];
  if ((types.includes('integer') || types.includes('number')) && !(bounded(s, ['maximum', 'exclusiveMaximum']) && bounded(s, ['minimum', 'exclusiveMinimum']))) {
    out.push(path || '/');
  }
  for (const [k, v] of Object.entries(s)) {
    if (k === 'properties' && typeof v === 'object' && v !== null) {
      for (const [name, sub] of Object.entries(v)) out.push(...unboundedNumbers(sub, `${path}/${name}`));
    } else if (k === 'items' || k === 'additionalProperties' || k === 'not') {
      out.push(...unboundedNumbers(v, `${path}/${k}`));
    } else if ((k === 'anyOf' || k === 'oneOf' || k === 'allOf' || k === 'prefixItems') && Array.isArray(v)) {
      v.forEach((sub, i) => out.push(...unboundedNumbers(sub, `${path}/${k}/${i}`)));
    }
  }
  return out;
}

// A number in a URL is written in decimal: "5", "-2", "2.5"; not " 5", "0x10", "1e400" or "Infinity".
const DECIMAL = /^-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?$/;

/**
 * Query strings and path parameters are text: where the route's schema says a field is a
 * number, a decimal written there is read as one (then validated, bounds and all); anything
 * else stays text, which the schema refuses as "must be integer".
 */
function readNumbers(schema: unknown, values: unknown): void {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> } | undefined)?.properties;
  if (!properties || typeof values !== 'object' || values === null) return;
  const target = values as Record<string, unknown>;
  for (const [name, property] of Object.entries(properties)) {
    const types = Array.isArray(property.type) ? property.type : [property.type];
    const value = target[name];
    if ((types.includes('integer') || types.includes('number')) && typeof value === 'string' && DECIMAL.test(value)) target[name] = Number(value);
  }
}

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/** A caller's x-request-id is kept (it is recorded with what the request writes) only if it is a plain id. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

const registered = new WeakMap<FastifyInstance, RouteOptions[]>();

/** Every route the rules guard, as registered (schemas, config): what a test sends hostile input to. */
export function routesOf(app: FastifyInstance): readonly RouteOptions[] {
  return registered.get(app) ?? [];
}

export function installInputRules(app: FastifyInstance): void {
  const routes: RouteOptions[] = [];
  registered.set(app, routes);
  // Validated as sent: no "100" silently read as 100, no unknown field dropped. (Query strings
  // are read as numbers by readNumbers, not by ajv's coercion, which turns "1e400" into an
  // Infinity that then passes every bound.)
  const ajv = validatorAjv({ coerceTypes: false });
  app.setValidatorCompiler(({ schema }) => ajv.compile(schema));

  app.addHook('onRoute', (route) => {
    routes.push(route);
    const schema = (route.schema ?? {}) as Record<string, unknown>;
    const loose = ['body', 'querystring', 'params', 'headers'].flatMap((part) => unboundedNumbers(schema[part]).map((p) => `${part}${p}`));
    if (loose.length > 0) throw new Error(`${String(route.method)} ${route.url}: numbers without bounds (give each a minimum and maximum): ${loose.join(', ')}`);
  });

  // Only JSON bodies: a text/plain body is 415, not a string the body schema then calls "not an object".
  app.removeAllContentTypeParsers();
  // Keep the raw body: signed upstream requests are verified over the exact bytes sent.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, raw, done) => {
    const text = raw as string;
    req.rawBody = text;
    if (text.trim() === '') return done(new ApiError(400, 'MALFORMED_JSON', 'The request body is empty; send a JSON object.'));
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new ApiError(400, 'MALFORMED_JSON', 'The request body is not valid JSON.'));
    }
  });

  app.addHook('preValidation', async (req) => {
    checkText('params', req.params);
    checkText('querystring', req.query);
    checkText('body', req.body);
    const schema = req.routeOptions.schema;
    readNumbers(schema?.querystring, req.query);
    readNumbers(schema?.params, req.params);
  });
}
