import type pg from 'pg';

export interface WalletSettings {
  /** Share of users who may withdraw, in basis points (10,000 = everyone). */
  withdrawalRolloutBp: number;
  /** Largest single withdrawal, minor units. */
  maxSingleWithdrawal: number;
  updatedAt: string;
  updatedBy: string;
}

/**
 * Wallet-wide settings, changeable while running: every API instance re-reads them within
 * `ttlMs`. Every change is kept in wallet_settings_history with who made it.
 */
export class WalletSettingsStore {
  private cached: { at: number; value: WalletSettings } | null = null;

  constructor(private readonly pool: pg.Pool, private readonly ttlMs = 2_000) {}

  async get(): Promise<WalletSettings> {
    if (this.cached && Date.now() - this.cached.at < this.ttlMs) return this.cached.value;
    const { rows } = await this.pool.query<{ withdrawal_rollout_bp: number; max_single_withdrawal: number; updated_at: Date; updated_by: string }>(
      'select withdrawal_rollout_bp, max_single_withdrawal, updated_at, updated_by from wallet_settings',
    );
    const r = rows[0]!;
    const value = { withdrawalRolloutBp: r.withdrawal_rollout_bp, maxSingleWithdrawal: r.max_single_withdrawal, updatedAt: r.updated_at.toISOString(), updatedBy: r.updated_by };
    this.cached = { at: Date.now(), value };
    return value;
  }

  async put(change: { withdrawalRolloutBp?: number; maxSingleWithdrawal?: number }, by: string): Promise<WalletSettings> {
    const client = await this.pool.connect();
    try {
      await client.query('begin');
      await client.query(
        `update wallet_settings set withdrawal_rollout_bp = coalesce($1, withdrawal_rollout_bp),
                max_single_withdrawal = coalesce($2, max_single_withdrawal), updated_at = now(), updated_by = $3`,
        [change.withdrawalRolloutBp ?? null, change.maxSingleWithdrawal ?? null, by],
      );
      await client.query(
        `insert into wallet_settings_history(withdrawal_rollout_bp, max_single_withdrawal, changed_by)
         select withdrawal_rollout_bp, max_single_withdrawal, updated_by from wallet_settings`,
      );
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
    this.cached = null;
    return this.get();
  }
}
