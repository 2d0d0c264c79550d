import { randomUUID } from 'node:crypto';
import { Periodic } from './periodic.ts';
import { refundEventIdFor } from '../domain/packets.ts';
import type { Currency } from '../domain/money.ts';
import type { Runtime } from '../infra/runtime.ts';
import { PacketGrabs } from '../infra/packet-grabs.ts';
import { ProjectionFence } from '../infra/projection-fence.ts';
import { PacketReader, PacketRestorer } from '../projections/packet-reader.ts';
import { journalFor, relayFor, type Journal, type JournalRelay } from '../infra/journal.ts';
import { PacketClaims } from '../infra/packet-claims.ts';

export interface KeeperRound {
  /** Claims of grabs that had not been confirmed journaled, journaled now. */
  resent: number;
  /** Expired packets closed, and refunds produced. */
  closed: number;
  refunded: number;
}

/**
 * Looks after red packets between the requests:
 *  - a grab whose claim was never confirmed journaled (the API died between Redis and the
 *    journal) gets its claim journaled, so the grabber ends up credited;
 *  - an expired packet is closed in Redis (no grab succeeds after that), every claim Redis
 *    knows is journaled again, and then the unclaimed rest is refunded to the sender.
 *
 * Journaling the claims first, and the refund only after they are accepted, puts them ahead
 * of the refund in the packet's journal shard and so on its partition: the fold sees every
 * claim before the refund, and the refund is exactly what no claim took. Everything is
 * idempotent (command keys, derived event ids, a close that fixes the rest once), so any
 * number of keepers may run, race, or restart midway. A keeper also relays the journal, so
 * what it accepts reaches the log even when no API instance runs.
 */
export class PacketKeeper {
  private readonly periodic = new Periodic(() => this.runOnce(), (err) => this.rt.log.error('packet keeper round failed', { err }));
  private readonly grabs: PacketGrabs;
  private readonly reader: PacketReader;
  private readonly fence: ProjectionFence;
  private readonly restorer: PacketRestorer;
  private readonly journal: Journal;
  private readonly relay: JournalRelay;
  private readonly claims: PacketClaims;
  rounds = 0;

  constructor(private readonly rt: Runtime, private readonly opts: { batch?: number } = {}) {
    this.grabs = new PacketGrabs(rt.redis, rt.cfg.namespace);
    this.reader = new PacketReader(rt.pool);
    this.fence = new ProjectionFence(rt);
    this.journal = journalFor(rt);
    this.relay = relayFor(rt, this.journal);
    this.restorer = new PacketRestorer(this.reader, this.grabs, this.fence, this.journal);
    this.claims = new PacketClaims(this.journal, this.grabs);
  }

  start(intervalMs = this.rt.cfg.packetKeeperIntervalMs): void {
    this.relay.start();
    this.periodic.start(intervalMs);
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
    await this.relay.stop();
    await this.fence.close();
  }

  async runOnce(now = Date.now()): Promise<KeeperRound> {
    const resent = await this.resendUnsent(now);
    const { closed, refunded } = await this.refundExpired(now);
    this.rounds++;
    return { resent, closed, refunded };
  }

  private async resendUnsent(now: number): Promise<number> {
    const stale = await this.grabs.unsent(now - this.rt.cfg.packetClaimSweepMs, this.opts.batch ?? 500);
    let resent = 0;
    for (const { packetId, userId } of stale) {
      const [share, packet] = await Promise.all([this.grabs.share(packetId, userId), this.grabs.senderOf(packetId)]);
      if (share && packet) {
        await this.claims.record({ packetId, userId, ...packet, share, traceId: randomUUID() });
        resent++;
      } else {
        await this.grabs.sent(packetId, userId);
      }
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
      // One packet that cannot be closed now (its state is being restored, a dependency
      // blinked) must not keep the others from their refunds.
      try {
        const r = await this.closeAndRefund(p, now);
        if (r === 'skipped') continue;
        closed++;
        if (r === 'refunded') refunded++;
      } catch (err) {
        this.rt.log.warn('expired red packet not refunded this round; trying again next round', { err, packetId: p.packet_id });
      }
    }
    return { closed, refunded };
  }

  private async closeAndRefund(p: { packet_id: string; sender_id: string; currency: Currency }, now: number): Promise<'skipped' | 'closed' | 'refunded'> {
    if (!(await this.grabs.senderOf(p.packet_id)) && !(await this.restorer.restore(p.packet_id, Date.now() + 10_000))) {
      this.rt.log.warn('expired red packet is in the ledger but could not be put back into Redis to close it', { packetId: p.packet_id });
      return 'skipped';
    }
    // Every claim Redis knows is journaled first: the journal settles Redis (a share a claim
    // holds leaves the unclaimed list, one the journal gave nobody goes back), so the rest the
    // close fixes next is exactly what no claim holds.
    const traceId = randomUUID();
    const claims = await this.grabs.claims(p.packet_id);
    await Promise.all(claims.map((c) => this.claims.record({
      packetId: p.packet_id, senderId: p.sender_id, userId: c.userId, share: c.share, currency: p.currency, traceId,
    })));
    const rest = await this.grabs.close(p.packet_id, now);
    if (rest === 'open') return 'skipped'; // not expired by this clock yet
    if (rest === 'missing') return 'skipped'; // its keys expired meanwhile: the next round restores it
    if (rest.rest === 0) return 'closed';
    await this.journal.accept({
      key: `refund:${p.packet_id}`, answer: { amount: rest.rest },
      events: [{ type: 'PacketRefunded', data: {
        eventId: refundEventIdFor(p.packet_id), occurredAt: now, activityId: '', traceId,
        packetId: p.packet_id, senderId: p.sender_id, amount: rest.rest, currency: p.currency,
      } }],
    });
    return 'refunded';
  }
}
