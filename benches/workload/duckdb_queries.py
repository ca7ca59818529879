#!/usr/bin/env python3
"""The reference queries on DuckDB over the generator's Parquet files: median of N runs each.

Usage: duckdb_queries.py DATA_DIR [RUNS]. Prints one JSON object per query.
"""
import json
import os
import statistics
import sys
import time

import duckdb

data, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
queries = os.path.join(os.path.dirname(os.path.abspath(__file__)), "queries")
con = duckdb.connect()
for table in ("usage", "model_prices", "budgets"):
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{data}/{table}.parquet')")
for q in range(1, 7):
    sql = open(os.path.join(queries, f"q{q}.sql")).read()
    times, rows = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        rows = len(con.execute(sql).fetchall())
        times.append(time.perf_counter() - started)
    print(json.dumps({"bench": f"duckdb_q{q}", "median_s": statistics.median(times), "rows": rows}))
