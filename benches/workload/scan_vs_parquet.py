#!/usr/bin/env python3
"""Scan overhead: finops.usage_events over the wire against DataFusion over one plain Parquet file.

Run against a server whose data directory holds the usage rows (after a COPY, say):

    benches/workload/scan_vs_parquet.py --data-dir ./finops-data --dsn "host=127.0.0.1 port=5433 user=finops password=finops dbname=finops"

The plain file holds the same rows, written once from the table's segment files the way Arrow's
`ArrowWriter` writes by default (uncompressed, row groups of 1Mi rows). Each query is timed RUNS
times on both sides, interleaved; the medians and their ratio are printed as JSON lines.
Needs `pip install datafusion pyarrow psycopg[binary]` (the `datafusion` package matching the
server's DataFusion version).
"""

import argparse
import glob
import json
import os
import statistics
import tempfile
import time

import datafusion
import psycopg
import pyarrow.parquet as pq

QUERIES = {
    "sum_by_team": "SELECT team, SUM(input_tokens) FROM {} GROUP BY team",
    "tokens_by_model_since": (
        "SELECT provider, model, SUM(input_tokens), SUM(output_tokens), "
        "SUM(cached_input_tokens), count(*) FROM {} "
        "WHERE ts >= TIMESTAMP '2025-05-01' GROUP BY 1, 2"
    ),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--runs", type=int, default=25)
    args = parser.parse_args()
    files = sorted(
        glob.glob(os.path.join(args.data_dir, "tables", "finops.usage_events-*", "data", "*.parquet"))
    )
    if not files:
        raise SystemExit(f"no usage segments under {args.data_dir}")
    with tempfile.TemporaryDirectory() as scratch:
        plain = os.path.join(scratch, "usage_events.parquet")
        pq.write_table(pq.read_table(files), plain, compression="none", row_group_size=1 << 20)
        ctx = datafusion.SessionContext()
        ctx.register_parquet("u", plain)
        with psycopg.connect(args.dsn) as conn:
            for name, sql in QUERIES.items():
                wire, local = [], []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    conn.execute(sql.format("finops.usage_events")).fetchall()
                    wire.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    ctx.sql(sql.format("u")).collect()
                    local.append(time.perf_counter() - started)
                wire_ms = statistics.median(wire) * 1000
                local_ms = statistics.median(local) * 1000
                print(json.dumps({
                    "bench": f"scan_{name}",
                    "segments": len(files),
                    "finops_db_ms": round(wire_ms, 1),
                    "datafusion_parquet_ms": round(local_ms, 1),
                    "ratio": round(wire_ms / local_ms, 3),
                }))


if __name__ == "__main__":
    main()
