import { randomUUID } from 'node:crypto';
import { Periodic } from './periodic.ts';
import { claimFor, refundEventIdFor } from '../domain/packets.ts';
import type { Currency } from '../domain/money.ts';
import type { Runtime } from '../infra/runtime.ts';
import { PacketGrabs } from '../infra/packet-grabs.ts';
import { ProjectionFence } from '../infra/projection-fence.ts';
import { PacketReader, PacketRestorer } from '../projections/packet-reader.ts';
import { packetCreatedFrom, strandedPacketRequests } from '../infra/packet-requests.ts';

export interface KeeperRound {
  /** Accepted packets whose creation was never produced, produced now. */
  stranded: number;
  /** Claims of grabs that had not been confirmed written, written now. */
  resent: number;
  /** Expired packets closed, and refunds produced. */
  closed: number;
  refunded: number;
}

/**
 * Looks after red packets between the requests:
 *  - a packet the API accepted but could not produce (and whose sender never retried) would
 *    hold its total for ever; its PacketCreated is produced, and the packet goes live (the
 *    first grab restores it into Redis) or, if already expired, is refunded whole;
 *  - a grab whose claim event was never confirmed (the API died between Redis and Kafka)
 *    gets its claim written, so the grabber ends up credited;
 *  - an expired packet is closed in Redis (no grab succeeds after that), every claim Redis
 *    knows is written again, and then the unclaimed rest is refunded to the sender.
 *
 * Writing the claims first, from this producer, puts them ahead of the refund on the
 * packet's partition, so the fold sees every claim before the refund and the refund is
 * exactly what no claim took. Everything is idempotent (derived event ids, a close that
 * fixes the rest once), so any number of keepers may run, race, or restart midway.
 */
export class PacketKeeper {
  private readonly periodic = new Periodic(() => this.runOnce(), (err) => this.rt.log.error('packet keeper round failed', { err }));
  private readonly grabs: PacketGrabs;
  private readonly reader: PacketReader;
  private readonly fence: ProjectionFence;
  private readonly restorer: PacketRestorer;
  rounds = 0;

  constructor(private readonly rt: Runtime, private readonly opts: { batch?: number } = {}) {
    this.grabs = new PacketGrabs(rt.redis, rt.cfg.namespace);
    this.reader = new PacketReader(rt.pool);
    this.fence = new ProjectionFence(rt);
    this.restorer = new PacketRestorer(this.reader, this.grabs, this.fence);
  }

  start(intervalMs = this.rt.cfg.packetKeeperIntervalMs): void {
    this.periodic.start(intervalMs);
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
    await this.fence.close();
  }

  async runOnce(now = Date.now()): Promise<KeeperRound> {
    const stranded = await this.produceStranded();
    const resent = await this.resendUnsent(now);
    const { closed, refunded } = await this.refundExpired(now);
    this.rounds++;
    return { stranded, resent, closed, refunded };
  }

  private async produceStranded(): Promise<number> {
    const rows = await strandedPacketRequests(this.rt.pool, this.rt.cfg.packetClaimSweepMs, this.opts.batch ?? 500);
    await Promise.all(rows.map((r) => this.rt.publisher.publish('PacketCreated', packetCreatedFrom(r))));
    return rows.length;
  }

  private async resendUnsent(now: number): Promise<number> {
    const stale = await this.grabs.unsent(now - this.rt.cfg.packetClaimSweepMs, this.opts.batch ?? 500);
    let resent = 0;
    for (const { packetId, userId } of stale) {
      const [share, packet] = await Promise.all([this.grabs.share(packetId, userId), this.grabs.senderOf(packetId)]);
      if (share && packet) {
        await this.rt.publisher.publish('PacketClaimed', claimFor({ packetId, userId, ...packet, ...share, traceId: randomUUID() }));
        resent++;
      }
      await this.grabs.sent(packetId, userId);
    }
    return resent;
  }

  private async refundExpired(now: number): Promise<{ closed: number; refunded: number }> {
    const { rows } = await this.rt.pool.query<{ packet_id: string; sender_id: string; currency: Currency }>(
      `select packet_id, sender_id, currency from packets
        where status = 'open' and expires_at <= to_timestamp($1::double precision / 1000)
        order by expires_at limit $2`,
      [now, this.opts.batch ?? 500],
    );
    let closed = 0;
    let refunded = 0;
    for (const p of rows) {
      let rest = await this.grabs.close(p.packet_id, now);
      if (rest === 'missing' && (await this.restorer.restore(p.packet_id, Date.now() + 10_000))) rest = await this.grabs.close(p.packet_id, now);
      if (typeof rest !== 'object') continue; // not expired by this clock yet, or unknown to the ledger
      closed++;
      const claims = await this.grabs.claims(p.packet_id);
      const traceId = randomUUID();
      await Promise.all(claims.map((c) => this.rt.publisher.publish('PacketClaimed', claimFor({
        packetId: p.packet_id, senderId: p.sender_id, userId: c.userId, ...c.share, currency: p.currency, traceId,
      }))));
      if (rest.rest > 0) {
        await this.rt.publisher.publish('PacketRefunded', {
          eventId: refundEventIdFor(p.packet_id), occurredAt: now, activityId: '', traceId,
          packetId: p.packet_id, senderId: p.sender_id, amount: rest.rest, currency: p.currency,
        });
        refunded++;
      }
      await Promise.all(claims.map((c) => this.grabs.sent(p.packet_id, c.userId)));
    }
    return { closed, refunded };
  }
}
