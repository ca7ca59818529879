//! Tests of materialized views: create, query, restart, refresh (atomic, serialised, incremental).
