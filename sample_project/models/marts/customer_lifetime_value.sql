-- Lifetime value per customer, from the daily fact; customers with no activity yet are kept with zeros.
with daily as (

    select * from {{ ref('fct_daily_customer_events') }}

),

customers as (

    select * from {{ ref('stg_customers') }}

),

countries as (

    select * from {{ ref('country_codes') }}

),

activity as (

    select
        customer_id,
        min(event_date) as first_seen_date,
        max(event_date) as last_seen_date,
        min(case when purchases > 0 then event_date end) as first_purchase_date,
        max(case when purchases > 0 then event_date end) as last_purchase_date,
        count(*) as active_days,
        cast(sum(purchases) as bigint) as orders,
        cast(sum(refunds) as bigint) as refunds,
        sum(gross_revenue) as gross_revenue,
        sum(refunded_amount) as refunded_amount,
        sum(net_revenue) as net_revenue
    from daily
    group by customer_id

),

as_of as (

    -- the newest day in the data, not today: the numbers do not drift when nothing was loaded
    select max(event_date) as as_of_date from daily

),

joined as (

    select
        c.customer_id,
        c.full_name,
        c.country_code,
        coalesce(k.region, 'Unknown') as region,
        c.segment,
        c.signup_date,
        a.first_purchase_date,
        a.last_purchase_date,
        coalesce(a.active_days, 0) as active_days,
        coalesce(a.orders, 0) as orders,
        coalesce(a.refunds, 0) as refunds,
        cast(coalesce(a.gross_revenue, 0) as decimal(14, 2)) as gross_revenue,
        cast(coalesce(a.refunded_amount, 0) as decimal(14, 2)) as refunded_amount,
        cast(coalesce(a.net_revenue, 0) as decimal(14, 2)) as net_revenue,
        {{ dbt.datediff('a.last_purchase_date', 'o.as_of_date', 'day') }} as days_since_last_purchase
    from customers as c
    cross join as_of as o
    left join activity as a on c.customer_id = a.customer_id
    left join countries as k on c.country_code = k.country_code

)

select
    *,
    cast(gross_revenue / nullif(orders, 0) as decimal(12, 2)) as avg_order_value,
    case
        when net_revenue >= 75000 then 'platinum'
        when net_revenue >= 25000 then 'gold'
        when net_revenue > 0 then 'silver'
        else 'none'
    end as value_tier,
    case
        when orders = 0 then 'never_purchased'
        when days_since_last_purchase <= 30 then 'active'
        when days_since_last_purchase <= 90 then 'cooling'
        else 'lapsed'
    end as lifecycle_stage,
    rank() over (order by net_revenue desc) as revenue_rank,
    rank() over (partition by country_code order by net_revenue desc) as country_revenue_rank,
    ntile(10) over (order by net_revenue desc) as revenue_decile
from joined
