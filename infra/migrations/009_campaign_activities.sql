-- Which lottery campaign owns an activity: each child of a campaign grants from its own ledger
-- activity '<campaign>:<child>', and that budget (and the gift packs granted under it) may be
-- spent only by the campaign's draws, never by a direct grant. Null for a plain activity.
alter table activities add column campaign_id text;

update activities a set campaign_id = c.activity_id
  from (select distinct activity_id, child->>'childId' as child_id
          from campaign_configs, jsonb_array_elements(config->'children') child) c
 where a.activity_id = c.activity_id || ':' || c.child_id;
