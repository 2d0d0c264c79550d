-- The command journal (QQ's "klog", kept in Postgres: the cash critical path is service +
-- Kafka + Postgres). A command's decision, its answer and the events it must produce commit
-- together before the answer is sent; a relay produces the events to Kafka afterwards. The
-- spendable budget lives here too, beside the decisions that spend it, so no cache (Redis)
-- can ever make the ledger issue more than was funded.

-- An activity's spendable budget. `reserved` is what accepted grants and draws took: the
-- check constraint is the over-issue invariant, held by the database itself.
create table budgets (
  activity_id text primary key,
  funded      bigint not null default 0 check (funded >= 0),
  reserved    bigint not null default 0 check (reserved >= 0),
  check (reserved <= funded)
);

-- Fundings are remembered for ever (the journal forgets commands after their retention): a
-- funding id re-posted at any time adds nothing.
create table fundings (
  activity_id text not null,
  funding_id  text not null,
  amount      bigint not null check (amount > 0),
  funded_at   timestamptz not null default now(),
  primary key (activity_id, funding_id)
);

create table journal (
  seq         bigserial primary key,
  -- One command, one answer: an order number's grant, a draw id's draw, a funding id's funding.
  command_key text not null unique,
  -- The relay's unit of order: every event of a key (user, packet's sender, activity) lands in one shard.
  shard       smallint not null,
  events      jsonb not null,
  answer      jsonb not null,
  accepted_at timestamptz not null default now(),
  produced_at timestamptz
);
create index journal_unproduced on journal (shard, seq) where produced_at is null;

-- A second thing a command takes that no other command may (a red packet's share: one
-- grabber each), forgotten with its command.
create table journal_guards (
  guard_key   text primary key,
  command_key text not null references journal (command_key) on delete cascade
);
-- Every delete from journal (pruning, a refused command) looks its guards up by command.
create index journal_guards_command on journal_guards (command_key);
create index journal_produced_at on journal (produced_at) where produced_at is not null;

-- A namespace migrated from the Redis budget: what the projection says was funded and issued.
-- (Fundings and grants the projector had not yet applied are not counted: migrate with the
-- processors caught up.)
insert into budgets (activity_id, funded, reserved)
select substring(account from '^activity:(.*):budget$'),
       coalesce(sum(amount) filter (where amount > 0), 0),
       least(coalesce(-sum(amount) filter (where amount < 0), 0), coalesce(sum(amount) filter (where amount > 0), 0))
  from postings where account like 'activity:%:budget'
 group by account;

-- Accepts a batch of commands in one round trip (the journal's group commit), in order. Each
-- command is {key, shard, events, answer, reserve?: {activityId, amount}, fund?: {activityId,
-- fundingId, amount}, guard?: key}; each result is {outcome: accepted | existing (with the
-- first answer) | exhausted (with what is left) | taken (the guard belongs to another
-- command, whose answer it carries)}. The command's row is written before its budget is touched,
-- so a concurrent batch with the same key waits for this one and then finds it.
create function journal_accept(cmds jsonb) returns jsonb language plpgsql as $$
declare
  c jsonb;
  results jsonb := '[]'::jsonb;
  prior jsonb;
  amt bigint;
  left_over bigint;
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
    insert into journal (command_key, shard, events, answer)
    values (c->>'key', (c->>'shard')::smallint, c->'events', c->'answer')
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
      amt := (c->'reserve'->>'amount')::bigint;
      update budgets set reserved = reserved + amt
       where activity_id = c->'reserve'->>'activityId' and reserved + amt <= funded
      returning funded - reserved into left_over;
      if not found then
        delete from journal where command_key = c->>'key';
        select funded - reserved into left_over from budgets where activity_id = c->'reserve'->>'activityId';
        results := results || jsonb_build_array(jsonb_build_object('outcome', 'exhausted', 'remaining', coalesce(left_over, 0)));
        continue;
      end if;
    end if;
    results := results || jsonb_build_array(jsonb_build_object('outcome', 'accepted'));
  end loop;
  return results;
end $$;

-- Coupons write their events to the journal too: one mechanism for every command. (An event
-- left in the outbox when this runs would be lost: upgrade with the outbox drained.)
drop table coupon_outbox;
