// The raw baseline for the API: a bare fastify route that parses a JSON body of the same
// shape and answers a JSON body of similar size, with no validation, Redis or Kafka.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.post('/bare', async (req) => {
  const b = req.body as Record<string, unknown>;
  return { tokenId: '00000000-0000-8000-8000-000000000000', token: 'x'.repeat(260), status: 'pending', ...b, issuedAt: new Date().toISOString() };
});
// Baseline for wallet reads: a GET with a path parameter answering a balance-sized body.
app.get<{ Params: { userId: string } }>('/bare/:userId', async (req) => ({
  userId: req.params.userId, currency: 'CNY', available: 0, pending: 0, withdrawing: 0, cumulativeIncome: 0,
}));
// Baseline for red-packet grabs: a POST with a path parameter answering a grab-sized body.
app.post<{ Params: { packetId: string } }>('/bare/packets/:packetId/grab', async (req) => ({
  packetId: req.params.packetId, userId: 'u', seq: 0, amount: 1, currency: 'CNY', claimedAt: new Date().toISOString(),
}));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3101) });
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
