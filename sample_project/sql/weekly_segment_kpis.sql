-- name: weekly_segment_kpis
-- materialized: view
-- owner: growth-analytics@shop.example
-- group: growth
-- tags: kpi, weekly
-- dialect: duckdb
-- description: The daily segment KPIs rolled up to ISO weeks (Monday start), with week-over-week revenue growth, for the Monday growth review.
WITH weekly AS (
    SELECT
        CAST(date_trunc('week', event_date) AS DATE) AS week_start,
        segment,
        count(*) AS days_in_week,
        CAST(sum(active_customers) AS BIGINT) AS customer_days,
        CAST(sum(buying_customers) AS BIGINT) AS buyer_days,
        CAST(sum(orders) AS BIGINT) AS orders,
        CAST(sum(net_revenue) AS DECIMAL(14, 2)) AS net_revenue
    FROM daily_segment_kpis
    GROUP BY 1, 2
)
SELECT
    week_start,
    segment,
    days_in_week,
    customer_days,
    buyer_days,
    round(buyer_days / nullif(customer_days, 0), 4) AS conversion_rate,
    orders,
    net_revenue,
    round(
        net_revenue / nullif(lag(net_revenue) OVER (PARTITION BY segment ORDER BY week_start), 0) - 1, 4
    ) AS revenue_growth_wow
FROM weekly
