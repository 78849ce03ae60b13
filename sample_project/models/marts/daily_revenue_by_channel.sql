-- Daily revenue per sales channel with a 7-day rolling view and each channel's share of the day.
with purchases as (

    select * from {{ ref('int_purchases') }}

),

channels as (

    select * from {{ ref('channels') }}

),

daily as (

    select
        event_date,
        channel,
        count(case when kind = 'purchase' then 1 end) as orders,
        count(case when kind = 'refund' then 1 end) as refunds,
        cast(sum(signed_quantity) as bigint) as net_units,
        cast(sum(case when kind = 'purchase' then signed_amount end) as decimal(14, 2)) as gross_revenue,
        cast(coalesce(-sum(case when kind = 'refund' then signed_amount end), 0) as decimal(14, 2)) as refunded_amount,
        cast(sum(signed_amount) as decimal(14, 2)) as net_revenue,
        cast(sum(signed_amount) - sum(signed_cost) as decimal(14, 2)) as gross_margin
    from purchases
    group by event_date, channel

)

select
    d.event_date,
    d.channel,
    c.channel_name,
    c.channel_type,
    c.is_paid,
    d.orders,
    d.refunds,
    d.net_units,
    d.gross_revenue,
    d.refunded_amount,
    d.net_revenue,
    d.gross_margin,
    cast(
        sum(d.net_revenue) over (
            partition by d.channel order by d.event_date rows between 6 preceding and current row
        ) as decimal(14, 2)
    ) as net_revenue_7d,
    round(d.net_revenue / nullif(sum(d.net_revenue) over (partition by d.event_date), 0), 4) as share_of_day
from daily as d
left join channels as c on d.channel = c.channel
