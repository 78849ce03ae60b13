-- Typed, cleaned events. event_time lets dbt microbatch models downstream read only their batch's rows.
{{ config(event_time='event_ts') }}

with source as (

    select * from {{ source('raw', 'events') }}

)

select
    event_id,
    event_ts,
    cast(event_ts as date) as event_date,
    customer_id,
    product_id,
    lower(trim(channel)) as channel,
    kind,
    coalesce(quantity, 0) as quantity,
    amount,
    cast(
        case kind
            when 'purchase' then amount
            when 'refund' then -amount
            else 0
        end as decimal(12, 2)
    ) as signed_amount,
    upper(currency) as currency,
    _loaded_at as loaded_at
from source
