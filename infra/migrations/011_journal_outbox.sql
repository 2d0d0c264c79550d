-- The journal's hot path, made cheaper (docs/benchmarks.md has the figures before and after).
--
-- 1. The events a command must produce move out of the command's row into journal_outbox, and
--    the relay deletes them once produced. Before, the relay marked each produced row
--    (`produced_at`), which rewrote every row and every index entry of it once more; a delete
--    writes nothing but the row's end. What stays in `journal` is the command's memory: its
--    key and first answer, kept for the retention whether or not its events are produced.
-- 2. journal_accept touches each budget row once per batch instead of once per command: the
--    batch's budgets are read under their locks, spent in the function's memory, and written
--    back at the end. A hot activity's row (every grant of a rain) had hundreds of versions per
--    second, each a heap and index write.

create table journal_outbox (
  seq         bigserial primary key,
  -- The relay's unit of order: every event of a key (user, packet's sender, activity) lands in one shard.
  shard       smallint not null,
  events      jsonb not null,
  accepted_at timestamptz not null default now()
);

-- What the old relay had not produced yet moves over, in journal order.
insert into journal_outbox (shard, events, accepted_at)
select shard, events, accepted_at from journal where produced_at is null order by seq;

drop index journal_unproduced;
drop index journal_produced_at;
alter table journal drop constraint journal_pkey;
alter table journal drop column seq, drop column shard, drop column events, drop column produced_at;
-- Pruning reads by age; rows are appended in time order, so a block range index is enough.
create index journal_accepted_at on journal using brin (accepted_at);

-- Accepts a batch of commands in one round trip (the journal's group commit), in order. Each
-- command is {key, shard, events, answer, reserve?: {activityId, amount}, fund?: {activityId,
-- fundingId, amount}, guard?: key}; each result is {outcome: accepted | existing (with the
-- first answer) | exhausted (with what is left) | taken (the guard belongs to another
-- command, whose answer it carries)}. Outcomes, lock order and budget slices are those of
-- 008 and 010; what changed is where the writes go (see above).
create or replace function journal_accept(cmds jsonb) returns jsonb language plpgsql as $$
declare
  c jsonb;
  results jsonb[] := '{}';
  accepted jsonb[] := '{}';
  prior jsonb;
  amt bigint;
  act text;
  evs jsonb;
  tok text[];
  -- The batch's budgets, {activityId: [funded, reserved]}, read under their locks and written
  -- back once at the end; `touched` names the ones that changed.
  bud jsonb;
  touched text[] := '{}';
  b_reserved bigint;
  b_funded bigint;
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
  select coalesce(jsonb_object_agg(activity_id, jsonb_build_array(funded, reserved)), '{}'::jsonb) into bud from budgets
   where activity_id in (select coalesce(x->'reserve'->>'activityId', x->'fund'->>'activityId') from jsonb_array_elements(cmds) x where x ? 'reserve' or x ? 'fund');

  for c in select value from jsonb_array_elements(cmds) loop
    evs := c->'events';
    if c ? 'reserve' then
      -- A command reserves or funds, never both (infra/journal.ts refuses one that does).
      act := c->'reserve'->>'activityId';
      amt := (c->'reserve'->>'amount')::bigint;
      b_funded := (bud->act->>0)::bigint;
      b_reserved := (bud->act->>1)::bigint;
      if b_funded is null or b_reserved + amt > b_funded then
        -- Not covered: a retry of a command accepted earlier still gets its first answer.
        select answer into prior from journal where command_key = c->>'key';
        if found then
          results := results || jsonb_build_object('outcome', 'existing', 'answer', prior);
        else
          results := results || jsonb_build_object('outcome', 'exhausted', 'remaining', coalesce(b_funded - b_reserved, 0));
        end if;
        continue;
      end if;
      -- The slice [b_reserved, b_reserved + amt) its TokenIssued carries (010_budget_slices.sql).
      -- `token` is the TokenIssued's index among the events (infra/journal.ts checks there is one).
      tok := array[c->'reserve'->>'token', 'data'];
      evs := jsonb_set(jsonb_set(evs, tok || 'budgetSliceEnd'::text, to_jsonb(b_reserved + amt)), tok || 'budgetFunded'::text, to_jsonb(b_funded));
    end if;
    insert into journal (command_key, answer) values (c->>'key', c->'answer') on conflict (command_key) do nothing;
    if not found then
      select answer into prior from journal where command_key = c->>'key';
      results := results || jsonb_build_object('outcome', 'existing', 'answer', prior);
      continue;
    end if;
    if c ? 'guard' then
      insert into journal_guards (guard_key, command_key) values (c->>'guard', c->>'key') on conflict do nothing;
      if not found then
        delete from journal where command_key = c->>'key';
        select j.answer into prior from journal_guards g join journal j on j.command_key = g.command_key where g.guard_key = c->>'guard';
        results := results || jsonb_build_object('outcome', 'taken', 'answer', prior);
        continue;
      end if;
    end if;
    if c ? 'fund' then
      act := c->'fund'->>'activityId';
      amt := (c->'fund'->>'amount')::bigint;
      insert into fundings (activity_id, funding_id, amount) values (act, c->'fund'->>'fundingId', amt) on conflict do nothing;
      if not found then
        -- Known from before the journal's retention: the first amount is the answer.
        delete from journal where command_key = c->>'key';
        select jsonb_build_object('amount', f.amount) into prior from fundings f where f.activity_id = act and f.funding_id = c->'fund'->>'fundingId';
        results := results || jsonb_build_object('outcome', 'existing', 'answer', prior);
        continue;
      end if;
      bud := jsonb_set(bud, array[act, '0'], to_jsonb((bud->act->>0)::bigint + amt));
      touched := touched || act;
    end if;
    if c ? 'reserve' then
      bud := jsonb_set(bud, array[act, '1'], to_jsonb(b_reserved + amt));
      touched := touched || act;
    end if;
    accepted := accepted || jsonb_build_object('shard', c->'shard', 'events', evs);
    results := results || '{"outcome":"accepted"}'::jsonb;
  end loop;

  -- The budgets, once each; the check constraint (reserved <= funded) still guards the result.
  update budgets b set funded = (bud->b.activity_id->>0)::bigint, reserved = (bud->b.activity_id->>1)::bigint
   where b.activity_id = any(touched);
  -- The accepted commands' events, in batch order (the relay produces a shard in seq order).
  insert into journal_outbox (shard, events)
  select (a->>'shard')::smallint, a->'events' from unnest(accepted) with ordinality as x(a, i) order by i;
  return to_jsonb(results);
end $$;
