-- Finance reconciliation: for every day the fact holds, revenue by channel and the per-customer fact must
-- agree to the cent. Days the fact has not built yet (microbatch backfill in progress) are skipped.
{{ config(tags=["finance"]) }}

with fact as (

    select event_date, sum(net_revenue) as net_revenue
    from {{ ref('fct_daily_customer_events') }}
    group by event_date

),

by_channel as (

    select event_date, sum(net_revenue) as net_revenue
    from {{ ref('daily_revenue_by_channel') }}
    group by event_date

)

select
    fact.event_date,
    fact.net_revenue as fact_net_revenue,
    coalesce(by_channel.net_revenue, 0) as channel_net_revenue
from fact
left join by_channel on fact.event_date = by_channel.event_date
-- to the cent: rounded, as the fakesnow emulator sums decimals as doubles
where round(fact.net_revenue, 2) <> round(coalesce(by_channel.net_revenue, 0), 2)
