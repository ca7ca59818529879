#!/usr/bin/env bash
# The workload benchmark, every peer in one run on this machine: generates the benchmark data
# (deterministic), times the reference queries on DuckDB, starts a throwaway PostgreSQL 15 for
# the COPY comparison, then runs `cargo bench --bench workload` (finops-db, release build).
#
#   ROWS=10000000 benches/workload/run.sh          # results as JSON lines on stdout
#   FINOPS_BENCH_INGEST_ONLY=1 benches/workload/run.sh   # only COPY and INSERT (and the peer)
set -euo pipefail
ROWS=${ROWS:-10000000}
WORK=${WORK:-/tmp/finops-bench}
cd "$(dirname "$0")/../.."
python3 -c 'import duckdb, numpy, pyarrow' 2>/dev/null || pip install --quiet duckdb numpy pyarrow
DATA="$WORK/data-$ROWS"
if [ ! -f "$DATA/usage.parquet" ]; then
    python3 benches/workload/gen_usage.py --rows "$ROWS" --seed 42 --out "$DATA" >&2
fi
echo "{\"bench\": \"machine\", \"cpus\": $(nproc), \"mem_gib\": $(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo), \"date\": \"$(date -u +%Y-%m-%dT%H:%MZ)\", \"rows\": $ROWS}"
[ -n "${FINOPS_BENCH_INGEST_ONLY:-}" ] || python3 benches/workload/duckdb_queries.py "$DATA" 3

PG_URL=""
PG_BIN=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)
if [ -n "$PG_BIN" ]; then
    PGDATA="$WORK/pg15"
    rm -rf "$PGDATA" && mkdir -p "$PGDATA"
    RUN=()
    if [ "$(id -u)" = 0 ]; then chown postgres "$PGDATA" "$WORK"; RUN=(runuser -u postgres --); fi
    "${RUN[@]}" "$PG_BIN/initdb" -D "$PGDATA" -A trust -U postgres >/dev/null
    "${RUN[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA" -o "-p 5499 -k /tmp -c fsync=on -c synchronous_commit=on -c max_wal_size=4GB" -l "$WORK/pg15.log" -w start >/dev/null
    trap '"${RUN[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null' EXIT
    PG_URL="host=/tmp port=5499 user=postgres dbname=postgres"
fi
FINOPS_BENCH_DATA="$DATA" FINOPS_BENCH_PG="$PG_URL" cargo bench --bench workload
