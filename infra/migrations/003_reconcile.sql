-- Reconciliation: audits compare the log with the projection by log position, and keep
-- their reports here (continuous windows, hourly reports, command-line audits).

-- "Which projected events lie before / after this offset of this partition".
create index ledger_events_position_idx on ledger_events(topic, partition, "offset");

create table reconcile_runs (
  run_id      uuid primary key,
  kind        text not null check (kind in ('audit', 'continuous', 'hourly')),
  -- The audited range of broker (append) time; range_from is null for a whole-log audit.
  range_from  timestamptz,
  range_to    timestamptz not null,
  started_at  timestamptz not null,
  finished_at timestamptz not null,
  events      bigint not null,
  differences int not null,
  by_kind     jsonb not null,
  summary     jsonb not null
);
-- One report per hour, whichever reconciler instance writes it.
create unique index reconcile_hourly_once on reconcile_runs(range_from) where kind = 'hourly';
create index reconcile_runs_kind_idx on reconcile_runs(kind, range_to desc);

create table reconcile_differences (
  run_id uuid not null references reconcile_runs(run_id) on delete cascade,
  seq    int not null,
  kind   text not null,
  detail jsonb not null,
  primary key (run_id, seq)
);
