-- name: daily_segment_kpis
-- materialized: incremental
-- partitioned: daily
-- partition_column: event_date
-- partition_start: 2024-01-01
-- partition_end: 2025-01-01
-- owner: growth-analytics@shop.example
-- group: growth
-- tags: kpi, daily
-- dialect: duckdb
-- description: Daily KPIs per customer segment (active and buying customers, conversion, revenue per buyer), built one day at a time from the daily customer fact.
SELECT
    f.event_date,
    c.segment,
    count(*) AS active_customers,
    count(case when f.purchases > 0 then 1 end) AS buying_customers,
    round(count(case when f.purchases > 0 then 1 end) / count(*), 4) AS conversion_rate,
    CAST(sum(f.purchases) AS BIGINT) AS orders,
    CAST(sum(f.views) AS BIGINT) AS views,
    CAST(sum(f.net_revenue) AS DECIMAL(14, 2)) AS net_revenue,
    CAST(sum(f.net_revenue) / nullif(count(case when f.purchases > 0 then 1 end), 0) AS DECIMAL(12, 2))
        AS revenue_per_buyer
FROM main.fct_daily_customer_events AS f
JOIN main.stg_customers AS c ON c.customer_id = f.customer_id
WHERE f.event_date >= :window_start AND f.event_date < :window_end
GROUP BY f.event_date, c.segment
