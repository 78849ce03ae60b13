"""dbt: reading a project into assets (loader), compiling models (compile), invoking dbt in process (invoke)."""
