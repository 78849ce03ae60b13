-- Product scorecard: totals, refund rate, rank within its category and its best month.
with purchases as (

    select * from {{ ref('int_purchases') }}

),

products as (

    select * from {{ ref('stg_products') }}

),

monthly as (

    select
        product_id,
        cast({{ dbt.date_trunc('month', 'event_date') }} as date) as sales_month,
        sum(signed_amount) as net_revenue
    from purchases
    group by product_id, sales_month

),

best_month as (

    select
        product_id,
        cast(sales_month as date) as best_month,
        cast(net_revenue as decimal(14, 2)) as best_month_net_revenue
    from monthly
    qualify row_number() over (partition by product_id order by net_revenue desc, sales_month) = 1

),

totals as (

    select
        product_id,
        count(case when kind = 'purchase' then 1 end) as orders,
        count(case when kind = 'refund' then 1 end) as refunds,
        cast(sum(signed_quantity) as bigint) as net_units,
        cast(sum(signed_amount) as decimal(14, 2)) as net_revenue,
        cast(sum(signed_amount) - sum(signed_cost) as decimal(14, 2)) as gross_margin,
        count(distinct customer_id) as distinct_customers
    from purchases
    group by product_id

)

select
    p.product_id,
    p.sku,
    p.product_name,
    p.category,
    p.is_active,
    coalesce(t.orders, 0) as orders,
    coalesce(t.refunds, 0) as refunds,
    coalesce(t.net_units, 0) as net_units,
    coalesce(t.net_revenue, 0) as net_revenue,
    coalesce(t.gross_margin, 0) as gross_margin,
    coalesce(t.distinct_customers, 0) as distinct_customers,
    round(t.refunds / nullif(t.orders, 0), 4) as refund_rate,
    dense_rank() over (partition by p.category order by coalesce(t.net_revenue, 0) desc) as category_rank,
    b.best_month,
    b.best_month_net_revenue
from products as p
left join totals as t on p.product_id = t.product_id
left join best_month as b on p.product_id = b.product_id
