import type { Runtime } from '../infra/runtime.ts';
import { CouponCommands } from '../infra/coupon-store.ts';
import { journalFor, relayFor, type JournalRelay } from '../infra/journal.ts';
import { Periodic } from './periodic.ts';

export interface CouponKeeperRound { expired: number }

/**
 * Looks after coupon holds between requests: a hold past its end is unfrozen (CouponUnfrozen,
 * reason timeout), so an abandoned payment that never said so gives its coupon back. It is a
 * command on the pack under its row lock, so keepers may run anywhere, several at once,
 * beside the API. Its events go through the command journal, which the keeper also relays.
 */
export class CouponKeeper {
  private readonly commands: CouponCommands;
  private readonly relay: JournalRelay;
  private readonly periodic = new Periodic(() => this.runOnce(), (err) => this.rt.log.error('coupon keeper round failed', { err }));
  rounds = 0;

  constructor(private readonly rt: Runtime, opts: { now?: () => number } = {}) {
    const journal = journalFor(rt);
    this.relay = relayFor(rt, journal);
    this.commands = new CouponCommands({ pool: rt.pool, journal, lowStockPercent: rt.cfg.couponLowStockPercent, now: opts.now });
  }

  start(intervalMs = this.rt.cfg.couponKeeperIntervalMs): void {
    this.relay.start();
    this.periodic.start(intervalMs);
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
    await this.relay.stop();
  }

  async runOnce(): Promise<CouponKeeperRound> {
    const expired = await this.commands.expireHolds();
    this.rounds++;
    return { expired };
  }
}
