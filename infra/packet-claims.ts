import { claimFor } from '../domain/packets.ts';
import type { Currency } from '../domain/money.ts';
import type { Journal } from './journal.ts';
import type { GrabbedShare, PacketGrabs } from './packet-grabs.ts';

export type RecordedClaim = { share: GrabbedShare; first: boolean } | 'taken';

/**
 * Journals the claim of a grab Redis decided. The journal, not Redis, is the record: a
 * grabber's claim is one command (`claim:<packet>:<user>`: a retry gets its first share) and
 * a share is one guard (`share:<packet>:<seq>`: one grabber each), so even a Redis that lost
 * the packet and restored it before an in-flight claim reached the log cannot hand a share
 * to two users, or two shares to one. When the journal disagrees with Redis, Redis is
 * corrected to it.
 *
 * The claim shares its journal shard with the packet's creation and refund (all on the
 * sender's partition), so the relay produces them in the order they were accepted.
 */
export class PacketClaims {
  constructor(private readonly journal: Journal, private readonly grabs: PacketGrabs) {}

  async record(c: { packetId: string; senderId: string; currency: Currency; userId: string; share: GrabbedShare; traceId: string }): Promise<RecordedClaim> {
    const r = await this.journal.accept<GrabbedShare>({
      key: `claim:${c.packetId}:${c.userId}`, guard: `share:${c.packetId}:${c.share.seq}`,
      events: [{ type: 'PacketClaimed', data: claimFor({ packetId: c.packetId, senderId: c.senderId, userId: c.userId, ...c.share, currency: c.currency, traceId: c.traceId }) }],
      answer: c.share,
    });
    switch (r.outcome) {
      case 'accepted':
        await this.grabs.settle(c.packetId, c.userId, c.share, c.share);
        return { share: c.share, first: true };
      case 'existing':
        await this.grabs.settle(c.packetId, c.userId, r.answer, c.share);
        return { share: r.answer, first: false };
      case 'taken':
        await this.grabs.disown(c.packetId, c.userId, c.share);
        return 'taken';
      case 'exhausted':
        throw new Error(`claim ${c.packetId}/${c.userId} spends no budget, yet the journal answered 'exhausted'`);
    }
  }
}
