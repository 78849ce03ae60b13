with customers as (

    select * from {{ ref('customers') }}

)

select
    customer_id,
    trim(first_name) || ' ' || trim(last_name) as full_name,
    lower(nullif(trim(email), '')) as email,
    upper(country_code) as country_code,
    lower(segment) as segment,
    signup_date,
    coalesce(nullif(trim(referral_source), ''), 'unknown') as referral_source
from customers
