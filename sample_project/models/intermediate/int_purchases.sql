-- Purchases and refunds with product economics; ephemeral, so it is inlined into the marts that use it.
with events as (

    select * from {{ ref('stg_events') }}
    where kind in ('purchase', 'refund')

),

products as (

    select * from {{ ref('stg_products') }}

)

select
    e.event_id,
    e.event_ts,
    e.event_date,
    e.customer_id,
    e.product_id,
    p.category,
    e.channel,
    e.kind,
    case when e.kind = 'refund' then -e.quantity else e.quantity end as signed_quantity,
    e.signed_amount,
    cast(
        case when e.kind = 'refund' then -e.quantity else e.quantity end * p.unit_cost
        as decimal(12, 2)
    ) as signed_cost
from events as e
inner join products as p
    on e.product_id = p.product_id
