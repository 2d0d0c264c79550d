import type { FastifyPluginAsync } from 'fastify';
import type { PacketService, CreatePacket } from './service.ts';
import type { PacketReader } from '../../projections/packet-reader.ts';
import type { PacketGrabs } from '../../infra/packet-grabs.ts';
import { createPacketSchema, grabSchema, packetDetailsSchema } from './schemas.ts';
import { IDEMPOTENCY_KEY } from '../wallets/schemas.ts';
import { ApiError } from '../errors.ts';

/**
 * Group red packets. Every route needs a user token: the sender pays from their own wallet,
 * a grab is always for the caller. Who got what is shown to the sender and to those who
 * grabbed; anyone else with the packet id sees only the packet itself.
 */
export const packetRoutes: FastifyPluginAsync<{ packets: PacketService; reader: PacketReader; grabs: PacketGrabs }> = async (app, { packets, reader, grabs }) => {
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), userAuth: true };
  });

  app.post<{ Body: CreatePacket }>('/v1/packets', { schema: createPacketSchema }, async (req, reply) => {
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
      throw new ApiError(400, 'MISSING_IDEMPOTENCY_KEY', 'Send an Idempotency-Key header of 8 to 128 letters, digits or _.:- so a retry cannot send twice.');
    }
    const answer = await packets.create(req.userId!, key, req.body, { requestedBy: req.userId!, clientAddress: req.ip, requestId: req.id });
    if (answer.replayed) void reply.header('idempotent-replayed', 'true');
    return reply.status(answer.replayed ? 200 : 201).send(answer.body);
  });

  app.post<{ Params: { packetId: string } }>('/v1/packets/:packetId/grab', { schema: grabSchema }, async (req, reply) => {
    const answer = await packets.grab(req.params.packetId, req.userId!, req.id);
    if (answer.replayed) void reply.header('idempotent-replayed', 'true');
    return reply.status(answer.replayed ? 200 : 201).send(answer.body);
  });

  app.get<{ Params: { packetId: string } }>('/v1/packets/:packetId', { schema: packetDetailsSchema }, async (req) => {
    const d = await reader.details(req.params.packetId);
    if (!d) throw new ApiError(404, 'PACKET_NOT_FOUND', 'There is no such red packet (a just-sent one can take a moment to appear).');
    const p = d.packet;
    const involved = p.senderId === req.userId || d.claims.some((c) => c.userId === req.userId) || (await grabs.share(p.packetId, req.userId!)) !== null;
    const iso = (ms: number) => new Date(ms).toISOString();
    return {
      packetId: p.packetId, senderId: p.senderId, amount: p.amount, currency: p.currency, count: p.count, greeting: p.greeting,
      createdAt: iso(p.createdAt), expiresAt: iso(p.expiresAt), status: p.status, claimedCount: p.claimedCount, claimedAmount: p.claimedAmount,
      refundedAmount: p.refundedAmount, closedAt: p.closedAt === null ? null : iso(p.closedAt),
      claims: involved ? d.claims : null, bestLuck: involved ? d.best : null,
    };
  });
};
