-- name: vip_customers
-- materialized: table
-- owner: growth-analytics@shop.example
-- group: growth
-- tags: crm, customers
-- description: Customers the account team looks after personally (platinum tier or top revenue decile), with the action to take.
WITH candidates AS (
    SELECT
        clv.customer_id,
        clv.full_name,
        clv.segment,
        clv.country_code,
        coalesce(cc.country_name, clv.country_code) AS country_name,
        clv.value_tier,
        clv.lifecycle_stage,
        clv.orders,
        clv.net_revenue,
        clv.avg_order_value,
        clv.last_purchase_date,
        clv.days_since_last_purchase,
        clv.revenue_rank
    FROM main.customer_lifetime_value AS clv
    LEFT JOIN country_codes AS cc ON cc.country_code = clv.country_code
    WHERE clv.value_tier = 'platinum' OR clv.revenue_decile = 1
)
SELECT
    *,
    CASE
        WHEN lifecycle_stage = 'lapsed' THEN 'win_back_call'
        WHEN lifecycle_stage = 'cooling' THEN 'send_offer'
        WHEN value_tier = 'platinum' THEN 'quarterly_review'
        ELSE 'account_check_in'
    END AS account_action
FROM candidates
