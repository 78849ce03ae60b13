-- The fact's grain is one row per customer per day; a failed or repeated microbatch must not double it.
select
    event_date,
    customer_id,
    count(*) as rows_for_customer_day
from {{ ref('fct_daily_customer_events') }}
group by event_date, customer_id
having count(*) > 1
