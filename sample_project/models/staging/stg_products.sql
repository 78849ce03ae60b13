with products as (

    select * from {{ ref('products') }}

)

select
    product_id,
    sku,
    product_name,
    category,
    unit_price,
    unit_cost,
    cast(unit_price - unit_cost as decimal(10, 2)) as unit_margin,
    round((unit_price - unit_cost) / nullif(unit_price, 0), 4) as margin_rate,
    launched_on,
    is_active
from products
