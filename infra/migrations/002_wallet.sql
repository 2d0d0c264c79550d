-- Wallet: withdrawals and their payouts, statement order, scene texts, wallet settings.

-- Statement order is the wallet-topic offset of the event that created the entry. One
-- user's wallet events share a partition, so this is the user's own event order: stable,
-- identical after a replay, and a late entry can only appear above a reader's cursor.
alter table tokens add column statement_seq bigint;
update tokens t set statement_seq = e."offset" from ledger_events e where e.event_id = t.token_id;
alter table tokens alter column statement_seq set not null;
create index tokens_statement_idx on tokens(user_id, statement_seq desc);

-- Projection of withdrawals (derived from the wallet topic, like everything above).
create table withdrawals (
  withdrawal_id uuid primary key,
  user_id       text not null,
  amount        bigint not null check (amount > 0),
  currency      text not null,
  status        text not null check (status in ('withdrawing', 'settled', 'failed', 'rejected')),
  requested_at  timestamptz not null,
  resolved_at   timestamptz,
  -- The PayoutSettled / PayoutFailed event that resolved it: its postings are "the posting behind the payout".
  resolved_event_id uuid,
  reason        text,
  provider_ref  text,
  statement_seq bigint not null
);
create index withdrawals_statement_idx on withdrawals(user_id, statement_seq desc);
create index withdrawals_open_idx on withdrawals(status) where status = 'withdrawing';

-- Command side (not derived from Kafka): withdrawals the API accepted. Until its event is
-- projected, an accepted withdrawal holds its amount against the user's available balance,
-- which is what makes two concurrent withdrawals of one balance impossible.
create table withdrawal_requests (
  withdrawal_id   uuid primary key,
  user_id         text not null,
  idempotency_key text not null,
  amount          bigint not null check (amount > 0),
  currency        text not null,
  created_at      timestamptz not null default now()
);
create index withdrawal_requests_user_idx on withdrawal_requests(user_id);

-- The text a user's statement shows for a reward from a scene.
create table scenes (
  activity_id    text not null references activities(activity_id),
  scene_id       text not null,
  statement_text text not null,
  primary key (activity_id, scene_id)
);

-- One row of wallet-wide settings, changeable while running.
create table wallet_settings (
  id                    boolean primary key default true check (id),
  withdrawal_rollout_bp int not null check (withdrawal_rollout_bp between 0 and 10000),
  max_single_withdrawal bigint not null check (max_single_withdrawal > 0),
  updated_at            timestamptz not null default now(),
  updated_by            text not null
);
insert into wallet_settings(withdrawal_rollout_bp, max_single_withdrawal, updated_by) values (10000, 2000000, 'migration');

-- Every settings change, for audit.
create table wallet_settings_history (
  changed_at            timestamptz not null default now(),
  withdrawal_rollout_bp int not null,
  max_single_withdrawal bigint not null,
  changed_by            text not null
);
