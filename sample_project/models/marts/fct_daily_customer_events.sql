-- One row per customer per day of activity. A dbt microbatch model: dbt (and sqlassets) build it one day at a
-- time, and the ref to stg_events is filtered to the batch's window through stg_events' event_time.
{{
    config(
        materialized='incremental',
        incremental_strategy='microbatch',
        event_time='event_date',
        batch_size='day',
        begin='2024-01-01',
        lookback=1,
        meta={'sqlassets': {'partitions': {'end': '2025-01-01'}}}
    )
}}

with events as (

    select * from {{ ref('stg_events') }}

)

select
    event_date,
    customer_id,
    count(*) as events_count,
    count(case when kind = 'view' then 1 end) as views,
    count(case when kind = 'purchase' then 1 end) as purchases,
    count(case when kind = 'refund' then 1 end) as refunds,
    cast(coalesce(sum(case when kind = 'purchase' then quantity end), 0) as bigint) as units_purchased,
    cast(coalesce(sum(case when kind = 'purchase' then amount end), 0) as decimal(14, 2)) as gross_revenue,
    cast(coalesce(sum(case when kind = 'refund' then amount end), 0) as decimal(14, 2)) as refunded_amount,
    cast(sum(signed_amount) as decimal(14, 2)) as net_revenue,
    count(distinct channel) as channels_used,
    min(event_ts) as first_event_at,
    max(event_ts) as last_event_at
from events
group by event_date, customer_id
