#!/usr/bin/env bash
# Hard caps under load: `pgbench -M prepared` with 32 clients against a release server on an empty
# data directory, for `SELECT 1` (the protocol's own floor), `finops.reserve` and the
# `finops.cap_status` point query, then the same three against PostgreSQL 15 when it is installed
# (SKIP_POSTGRES=1 skips it). One line per run: calls/s, p50 and p99 in ms (from pgbench's
# per-transaction log).
#
#   benches/workload/caps.sh                 # 3 rounds, 10 s each, 32 clients on 2 threads
#   ROUNDS=5 SECONDS_EACH=10 CLIENTS=32 THREADS=2 benches/workload/caps.sh
#   PIN=1 benches/workload/caps.sh           # server on CPU 1, pgbench (one thread) on CPU 0
#
# Unpinned, the 32 clients, pgbench's threads and the server share every core, and the tail
# latency is mostly the scheduler's. PIN=1 gives the load generator a core of its own, as a
# gateway on another machine would be, and leaves the server one core.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-10}
CLIENTS=${CLIENTS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-5491}
PIN=${PIN:-0}
SERVER_PIN=()
CLIENT_PIN=()
if [ "$PIN" = 1 ]; then
    SERVER_PIN=(taskset -c 1)
    CLIENT_PIN=(taskset -c 0)
    THREADS=1
fi
cd "$(dirname "$0")/../.."
BIN=${FINOPS_BIN:-target/release/finops-db}
[ -x "$BIN" ] || cargo build --release --bin finops-db
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
"${SERVER_PIN[@]}" "$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
export PGPASSWORD=finops
CONN=(-h 127.0.0.1 -p "$PORT" -U finops)
for _ in $(seq 50); do psql "${CONN[@]}" -d finops -qAtc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql "${CONN[@]}" -d finops -qc "INSERT INTO finops.budgets (budget_id, scope, scope_value, period, amount, hard_cap) \
    VALUES ('bench-cap', 'team', 'search', 'month', 1000000000, true)" >/dev/null

echo 'SELECT 1;' >"$WORK/select_1.sql"
echo "SELECT finops.reserve('team', 'search', 0.0001);" >"$WORK/reserve.sql"
echo "SELECT remaining, allowed FROM finops.cap_status WHERE budget_id = 'bench-cap';" >"$WORK/cap_status.sql"

# measure TARGET ROUND NAME DBNAME CONNECTION...: one pgbench run of $WORK/NAME.sql, one JSON line.
measure() {
    local target=$1 round=$2 name=$3 db=$4
    shift 4
    rm -f "$WORK"/log.*
    (cd "$WORK" && "${CLIENT_PIN[@]}" pgbench "$@" -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$SECONDS_EACH" \
        -f "$name.sql" -l --log-prefix=log "$db" >"$WORK/out" 2>&1)
    # Per-transaction log: client, tx, latency (µs), script, epoch s, µs.
    cat "$WORK"/log.* | awk '{print $3}' | sort -n | awk -v target="$target" -v name="$name" -v round="$round" -v secs="$SECONDS_EACH" -v pin="$PIN" '
        { v[NR] = $1 }
        END {
            p50 = v[int(NR * 0.50) + 1]; p99 = v[int(NR * 0.99) + 1];
            printf "{\"target\": \"%s\", \"bench\": \"%s\", \"pinned\": %d, \"round\": %d, \"calls_per_s\": %.0f, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
                target, name, pin, round, NR / secs, p50 / 1000, p99 / 1000
        }'
}

for round in $(seq "$ROUNDS"); do
    for name in select_1 reserve cap_status; do
        measure finops-db "$round" "$name" finops "${CONN[@]}"
    done
done

# The peer, if PostgreSQL 15 is installed, under the same pinning: `SELECT 1`, a point query on a
# one-row table by primary key, and a reservation as a lock-based cap makes it (an UPDATE ...
# RETURNING of that row).
PG_BIN=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)
[ -n "$PG_BIN" ] && [ -z "${SKIP_POSTGRES:-}" ] || exit 0
kill "$SERVER" 2>/dev/null || true
wait "$SERVER" 2>/dev/null || true
PGDATA="$WORK/pg15"
mkdir -p "$PGDATA"
RUN=()
if [ "$(id -u)" = 0 ]; then chown postgres "$PGDATA" "$WORK"; RUN=(runuser -u postgres --); fi
"${RUN[@]}" "$PG_BIN/initdb" -D "$PGDATA" -A trust -U postgres >/dev/null
"${SERVER_PIN[@]}" "${RUN[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA" -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=100" \
    -l "$WORK/pg15.log" -w start >/dev/null
trap '"${RUN[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null; rm -rf "$WORK"' EXIT
PG=(-h 127.0.0.1 -p "$PORT" -U postgres)
psql "${PG[@]}" -d postgres -qc "CREATE TABLE caps (budget_id text PRIMARY KEY, amount numeric, spent numeric, \
    remaining numeric, allowed boolean); INSERT INTO caps VALUES ('bench-cap', 1000000000, 0, 1000000000, true)" >/dev/null
echo "SELECT remaining, allowed FROM caps WHERE budget_id = 'bench-cap';" >"$WORK/cap_status.sql"
echo "UPDATE caps SET spent = spent + 0.0001, remaining = remaining - 0.0001 WHERE budget_id = 'bench-cap' AND remaining >= 0.0001 RETURNING true;" >"$WORK/reserve.sql"
for round in $(seq "$ROUNDS"); do
    for name in select_1 reserve cap_status; do
        measure postgresql-15 "$round" "$name" postgres "${PG[@]}"
    done
done
