-- Budget slices (ledger invariant I10): the fold's backstop against over-issue. Each command
-- that reserves budget takes the half-open slice [reserved, reserved + amount) of its
-- activity's cumulative reservations, and its TokenIssued records the slice's end and the
-- activity's cumulative funding then (budgetSliceEnd, budgetFunded). The fold refuses a token
-- whose slice is missing or not covered by the funding it records; the audit checks that an
-- activity's slices are disjoint and end within its fundings on the log.

-- The projection keeps each token's slice end, for the invariant check (projections/invariants.ts).
-- Null on tokens projected before this migration.
alter table tokens add column budget_slice_end bigint;

-- journal_accept as in 008_journal.sql (same outcomes, same lock order, the command's row
-- written before its budget is touched), except that a reserving command's budget row is read
-- before its row is written, so the row is inserted with its TokenIssued already carrying the
-- slice: no second write of the journal row per grant. The row is locked (above, in one
-- order), so what is read is what the reservation then adds to.
create or replace function journal_accept(cmds jsonb) returns jsonb language plpgsql as $$
declare
  c jsonb;
  results jsonb := '[]'::jsonb;
  prior jsonb;
  amt bigint;
  evs jsonb;
  b_reserved bigint;
  b_funded bigint;
  covered boolean;
begin
  -- Every budget row the batch spends from or funds is locked first, in one order for every
  -- batch, so two batches never deadlock on budgets. A funded activity's row is made first (a
  -- grant on an activity never funded finds no row and is refused, writing nothing).
  insert into budgets (activity_id)
  select distinct x->'fund'->>'activityId' from jsonb_array_elements(cmds) x where x ? 'fund'
  on conflict do nothing;
  perform 1 from budgets
   where activity_id in (select coalesce(x->'reserve'->>'activityId', x->'fund'->>'activityId') from jsonb_array_elements(cmds) x where x ? 'reserve' or x ? 'fund')
   order by activity_id for update;
  for c in select value from jsonb_array_elements(cmds) loop
    evs := c->'events';
    covered := false;
    if c ? 'reserve' then
      -- A command reserves or funds, never both (infra/journal.ts refuses one that does), so
      -- nothing between here and the reservation below changes this row.
      amt := (c->'reserve'->>'amount')::bigint;
      select reserved, funded into b_reserved, b_funded from budgets where activity_id = c->'reserve'->>'activityId';
      covered := found and b_reserved + amt <= b_funded;
      if covered then
        select jsonb_agg(case when e->>'type' = 'TokenIssued'
                              then jsonb_set(jsonb_set(e, '{data,budgetSliceEnd}', to_jsonb(b_reserved + amt)), '{data,budgetFunded}', to_jsonb(b_funded))
                              else e end order by i)
          into evs from jsonb_array_elements(evs) with ordinality as x(e, i);
      end if;
    end if;
    insert into journal (command_key, shard, events, answer)
    values (c->>'key', (c->>'shard')::smallint, evs, c->'answer')
    on conflict (command_key) do nothing;
    if not found then
      select answer into prior from journal where command_key = c->>'key';
      results := results || jsonb_build_array(jsonb_build_object('outcome', 'existing', 'answer', prior));
      continue;
    end if;
    if c ? 'guard' then
      insert into journal_guards (guard_key, command_key) values (c->>'guard', c->>'key') on conflict do nothing;
      if not found then
        delete from journal where command_key = c->>'key';
        select j.answer into prior from journal_guards g join journal j on j.command_key = g.command_key where g.guard_key = c->>'guard';
        results := results || jsonb_build_array(jsonb_build_object('outcome', 'taken', 'answer', prior));
        continue;
      end if;
    end if;
    if c ? 'fund' then
      amt := (c->'fund'->>'amount')::bigint;
      insert into fundings (activity_id, funding_id, amount)
      values (c->'fund'->>'activityId', c->'fund'->>'fundingId', amt)
      on conflict do nothing;
      if not found then
        -- Known from before the journal's retention: the first amount is the answer.
        delete from journal where command_key = c->>'key';
        select jsonb_build_object('amount', f.amount) into prior from fundings f
         where f.activity_id = c->'fund'->>'activityId' and f.funding_id = c->'fund'->>'fundingId';
        results := results || jsonb_build_array(jsonb_build_object('outcome', 'existing', 'answer', prior));
        continue;
      end if;
      insert into budgets (activity_id, funded) values (c->'fund'->>'activityId', amt)
      on conflict (activity_id) do update set funded = budgets.funded + excluded.funded;
    end if;
    if c ? 'reserve' then
      if not covered then
        delete from journal where command_key = c->>'key';
        results := results || jsonb_build_array(jsonb_build_object('outcome', 'exhausted', 'remaining', coalesce(b_funded - b_reserved, 0)));
        continue;
      end if;
      -- The slice [b_reserved, b_reserved + amt) the event carries; the check constraint
      -- (reserved <= funded) still holds the command side to its funding.
      update budgets set reserved = b_reserved + amt where activity_id = c->'reserve'->>'activityId';
    end if;
    results := results || jsonb_build_array(jsonb_build_object('outcome', 'accepted'));
  end loop;
  return results;
end $$;
