import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import { configErrors, type CampaignConfig, type ConfigError } from '../domain/campaigns.ts';
import { isInstant, readInstant } from '../domain/instants.ts';

/** The published JSON Schema of a campaign configuration (served at GET /v1/admin/campaigns/schema). */
export const campaignConfigSchema: Record<string, unknown> = JSON.parse(
  readFileSync(new URL('./campaign-config.schema.json', import.meta.url), 'utf8'),
);

// verbose: a format error carries the value, so its message can say what is wrong with it.
const ajv = new Ajv2020({ allErrors: true, strict: true, verbose: true });
// The date-time format is the reading the draw path uses, not ajv-formats' wider one (which
// passes leap seconds and offsets Date.parse cannot read).
ajv.addFormat('date-time', { type: 'string', validate: isInstant });
const check = ajv.compile<CampaignConfig>(campaignConfigSchema);

/** An Ajv error as a path and a sentence a person can act on. */
function describe(e: ErrorObject): ConfigError {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return { path: e.instancePath, message: `missing required field "${String(p.missingProperty)}"` };
    case 'additionalProperties':
      return { path: `${e.instancePath}/${String(p.additionalProperty)}`, message: 'is not a field of this object' };
    case 'enum':
      return { path: e.instancePath, message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'format': {
      const reading = typeof e.data === 'string' ? readInstant(e.data) : null;
      return { path: e.instancePath, message: reading && !reading.ok ? reading.problem : `must be a ${String(p.format)}` };
    }
    default:
      return { path: e.instancePath, message: e.message ?? e.keyword };
  }
}

export type ConfigCheck = { ok: true; config: CampaignConfig } | { ok: false; errors: ConfigError[] };

/**
 * Validates a configuration against the JSON Schema, and only then against the rules the
 * schema cannot express (domain/campaigns.ts). Every error names its JSON Pointer path.
 */
export function validateCampaignConfig(raw: unknown): ConfigCheck {
  if (!check(raw)) {
    const seen = new Set<string>();
    const errors: ConfigError[] = [];
    for (const e of check.errors ?? []) {
      const d = describe(e);
      const key = `${d.path}\u0000${d.message}`;
      if (!seen.has(key)) errors.push(d);
      seen.add(key);
    }
    return { ok: false, errors };
  }
  const errors = configErrors(raw);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, config: raw };
}
