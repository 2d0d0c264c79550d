import type { Runtime } from '../infra/runtime.ts';
import { CouponCommands } from '../infra/coupon-store.ts';
import { Periodic } from './periodic.ts';

export interface CouponKeeperRound { expired: number; produced: number }

/**
 * Looks after coupon holds and the coupon outbox between requests:
 *  - a hold past its end is unfrozen (CouponUnfrozen, reason timeout), so an abandoned
 *    payment that never said so gives its coupon back;
 *  - events an API instance decided but could not produce (Kafka down, the instance died
 *    after commit) are produced once they are older than the sweep age.
 * Both are commands on the pack under its row lock, so keepers may run anywhere, several
 * at once, beside the API.
 */
export class CouponKeeper {
  private readonly commands: CouponCommands;
  private readonly periodic = new Periodic(() => this.runOnce(), (err) => this.rt.log.error('coupon keeper round failed', { err }));
  rounds = 0;

  constructor(private readonly rt: Runtime, opts: { now?: () => number } = {}) {
    this.commands = new CouponCommands({ pool: rt.pool, publisher: rt.publisher, lowStockPercent: rt.cfg.couponLowStockPercent, now: opts.now, log: rt.log });
  }

  start(intervalMs = this.rt.cfg.couponKeeperIntervalMs): void {
    this.periodic.start(intervalMs);
  }

  stop(): Promise<void> {
    return this.periodic.stop();
  }

  async runOnce(): Promise<CouponKeeperRound> {
    const expired = await this.commands.expireHolds();
    const produced = await this.commands.produceStranded(this.rt.cfg.couponOutboxSweepMs);
    this.rounds++;
    return { expired, produced };
  }
}
