import type { FastifyPluginAsync } from 'fastify';
import { ApiError, errorResponse } from '../errors.ts';
import { PG_INT_MAX } from '../input.ts';
import { campaignConfigSchema, validateCampaignConfig } from '../../schemas/campaign-config.ts';
import { ActivityTaken, VersionConflict, type CampaignCatalog, type CampaignStore } from '../../infra/campaign-store.ts';
import type { CampaignConfig } from '../../domain/campaigns.ts';

const activityParams = {
  type: 'object', required: ['activityId'],
  properties: { activityId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
} as const;

/** The configuration body is validated by the published schema in the handler, for path-precise errors. */
const anyObject = { type: 'object' } as const;
/** A campaign of 20 children × 50 scenes × 100 prizes is far above the API's 16 KiB default. */
const CONFIG_BODY_LIMIT = 4 * 1024 * 1024;

function checked(activityId: string, body: unknown): CampaignConfig {
  const result = validateCampaignConfig(body);
  if (!result.ok) {
    throw new ApiError(422, 'INVALID_CONFIG', `The configuration is invalid: ${result.errors.map((e) => `${e.path || '/'} ${e.message}`).join('; ')}`, { errors: result.errors });
  }
  if (result.config.activityId !== activityId) {
    throw new ApiError(422, 'INVALID_CONFIG', `The configuration is for "${result.config.activityId}", not "${activityId}".`, { errors: [{ path: '/activityId', message: `must be "${activityId}"` }] });
  }
  return result.config;
}

/** A store refusal as an answer; anything else is not the request's fault. */
function refusalOf(err: unknown, expected: number | undefined): unknown {
  if (err instanceof VersionConflict) {
    return new ApiError(409, 'VERSION_CONFLICT', `The configuration is at version ${err.current}, not ${expected}; read it and put again.`, { current: err.current });
  }
  if (err instanceof ActivityTaken) {
    const errors = [{ path: `/children/${err.childIndex}/childId`, message: `its ledger activity "${err.activityId}" already exists as a plain activity; choose another childId` }];
    return new ApiError(422, 'INVALID_CONFIG', `The configuration is invalid: ${errors[0]!.path} ${errors[0]!.message}`, { errors });
  }
  return err;
}

/**
 * Campaign configuration: put (a new version, in force on every instance within one poll),
 * validate without storing (a dry run), list versions, read one, and roll back (a new version
 * with an old one's content, so the history shows the rollback). Behind the admin token.
 */
/** A coupon prize's gift pack must exist when the configuration is put, not fail the first draw that wins it. */
async function checkPacks(config: CampaignConfig, knownPacks: (ids: string[]) => Promise<Set<string>>): Promise<void> {
  const refs = config.children.flatMap((ch, ci) => ch.scenes.flatMap((s, si) => s.pool.prizes.flatMap((p, pi) => (
    p.packId === undefined ? [] : [{ packId: p.packId, path: `/children/${ci}/scenes/${si}/pool/prizes/${pi}/packId` }]))));
  if (refs.length === 0) return;
  const known = await knownPacks([...new Set(refs.map((r) => r.packId))]);
  const errors = refs.filter((r) => !known.has(r.packId)).map((r) => ({ path: r.path, message: `there is no gift pack ${r.packId}` }));
  if (errors.length > 0) {
    throw new ApiError(422, 'INVALID_CONFIG', `The configuration is invalid: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`, { errors });
  }
}

export const campaignRoutes: FastifyPluginAsync<{ store: CampaignStore; catalog: CampaignCatalog; knownPacks: (ids: string[]) => Promise<Set<string>> }> =
  async (app, { store, catalog, knownPacks }) => {
  app.get('/v1/admin/campaigns/schema', async () => campaignConfigSchema);

  app.post<{ Params: { activityId: string } }>(
    '/v1/admin/campaigns/:activityId/config/validate',
    { bodyLimit: CONFIG_BODY_LIMIT, schema: { params: activityParams, body: anyObject, response: { '4xx': errorResponse } } },
    async (req) => {
      await checkPacks(checked(req.params.activityId, req.body), knownPacks);
      return { valid: true };
    },
  );

  app.put<{ Params: { activityId: string }; Querystring: { expectedVersion?: string; note?: string } }>(
    '/v1/admin/campaigns/:activityId/config',
    {
      bodyLimit: CONFIG_BODY_LIMIT,
      schema: {
        params: activityParams, body: anyObject,
        querystring: {
          type: 'object', additionalProperties: false,
          properties: { expectedVersion: { type: 'string', pattern: '^[0-9]{1,9}$' }, note: { type: 'string', maxLength: 500 } },
        },
        response: { '4xx': errorResponse },
      },
    },
    async (req, reply) => {
      const config = checked(req.params.activityId, req.body);
      await checkPacks(config, knownPacks);
      const expected = req.query.expectedVersion === undefined ? undefined : Number(req.query.expectedVersion);
      let version: number;
      try {
        version = await store.put(config, `admin@${req.ip}`, req.query.note ?? '', expected);
      } catch (err) {
        throw refusalOf(err, expected);
      }
      await catalog.refresh();
      return reply.status(201).send({ activityId: config.activityId, version });
    },
  );

  app.get<{ Params: { activityId: string } }>(
    '/v1/admin/campaigns/:activityId/config',
    { schema: { params: activityParams, response: { '4xx': errorResponse } } },
    async (req) => {
      const stored = await store.get(req.params.activityId);
      if (!stored) throw new ApiError(404, 'UNKNOWN_ACTIVITY', `There is no configuration for "${req.params.activityId}".`);
      return stored;
    },
  );

  app.get<{ Params: { activityId: string } }>(
    '/v1/admin/campaigns/:activityId/config/versions',
    { schema: { params: activityParams, response: { '4xx': errorResponse } } },
    async (req) => {
      const versions = await store.versions(req.params.activityId);
      if (versions.length === 0) throw new ApiError(404, 'UNKNOWN_ACTIVITY', `There is no configuration for "${req.params.activityId}".`);
      return { activityId: req.params.activityId, current: versions[0]!.version, versions };
    },
  );

  app.post<{ Params: { activityId: string }; Body: { toVersion: number; note?: string } }>(
    '/v1/admin/campaigns/:activityId/config/rollback',
    {
      schema: {
        params: activityParams,
        body: {
          type: 'object', additionalProperties: false, required: ['toVersion'],
          properties: { toVersion: { type: 'integer', minimum: 1, maximum: PG_INT_MAX }, note: { type: 'string', maxLength: 500 } },
        },
        response: { '4xx': errorResponse },
      },
    },
    async (req, reply) => {
      const old = await store.get(req.params.activityId, req.body.toVersion);
      if (!old) throw new ApiError(404, 'UNKNOWN_VERSION', `"${req.params.activityId}" has no version ${req.body.toVersion}.`);
      // An old version passed the rules of its day; it must pass today's too.
      const config = checked(req.params.activityId, old.config);
      const version = await store.put(config, `admin@${req.ip}`, req.body.note ?? `rollback to version ${req.body.toVersion}`, undefined, req.body.toVersion)
        .catch((err: unknown) => { throw refusalOf(err, undefined); });
      await catalog.refresh();
      return reply.status(201).send({ activityId: config.activityId, version, rolledBackTo: req.body.toVersion });
    },
  );
};
