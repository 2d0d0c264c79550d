import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import * as ajvFormats from 'ajv-formats';
import { configErrors, type CampaignConfig, type ConfigError } from '../domain/campaigns.ts';

/** The published JSON Schema of a campaign configuration (served at GET /v1/admin/campaigns/schema). */
export const campaignConfigSchema: Record<string, unknown> = JSON.parse(
  readFileSync(new URL('./campaign-config.schema.json', import.meta.url), 'utf8'),
);

const ajv = new Ajv2020({ allErrors: true, strict: true });
// ajv-formats is CommonJS: under ESM its function is the namespace's default.
const addFormats = (ajvFormats as unknown as { default: ajvFormats.FormatsPlugin }).default;
addFormats(ajv, ['date-time']);
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
    case 'format':
      return { path: e.instancePath, message: `must be a ${String(p.format)} (e.g. 2027-01-28T20:00:00+08:00)` };
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
