import type { FastifyPluginAsync } from 'fastify';
import { upstreamAudit } from '../auth/upstream-plugin.ts';
import type { DrawCommand } from '../../domain/campaigns.ts';
import { drawRouteSchema } from './schemas.ts';
import type { DrawService } from './service.ts';

/** Upstream activity services draw for their users here (signed requests, like grants). */
export const drawRoutes: FastifyPluginAsync<{ draws: DrawService }> = async (app, { draws }) => {
  app.post<{ Body: DrawCommand }>('/v1/draws', { schema: drawRouteSchema }, async (req, reply) => {
    const answer = await draws.draw(req.body, upstreamAudit(req));
    if (answer.replayed) void reply.header('idempotent-replayed', 'true');
    return reply.status(answer.replayed ? 200 : 201).send(answer.body);
  });
};
