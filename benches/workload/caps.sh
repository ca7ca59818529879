#!/usr/bin/env bash
# Hard caps under load: `pgbench -M prepared` with 32 clients against a release server on an empty
# data directory, for `SELECT 1` (the protocol's own floor), `finops.reserve` and the
# `finops.cap_status` point query. One line per run: calls/s, p50 and p99 in ms (from pgbench's
# per-transaction log).
#
#   benches/workload/caps.sh                 # 3 rounds, 10 s each, 32 clients on 2 threads
#   ROUNDS=5 SECONDS_EACH=10 CLIENTS=32 THREADS=2 benches/workload/caps.sh
set -euo pipefail
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-10}
CLIENTS=${CLIENTS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-5491}
cd "$(dirname "$0")/../.."
BIN=${FINOPS_BIN:-target/release/finops-db}
[ -x "$BIN" ] || cargo build --release --bin finops-db
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
export PGPASSWORD=finops
CONN=(-h 127.0.0.1 -p "$PORT" -U finops)
for _ in $(seq 50); do psql "${CONN[@]}" -d finops -qAtc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql "${CONN[@]}" -d finops -qc "INSERT INTO finops.budgets (budget_id, scope, scope_value, period, amount, hard_cap) \
    VALUES ('bench-cap', 'team', 'search', 'month', 1000000000, true)" >/dev/null

echo 'SELECT 1;' >"$WORK/select_1.sql"
echo "SELECT finops.reserve('team', 'search', 0.0001);" >"$WORK/reserve.sql"
echo "SELECT remaining, allowed FROM finops.cap_status WHERE budget_id = 'bench-cap';" >"$WORK/cap_status.sql"

for round in $(seq "$ROUNDS"); do
    for name in select_1 reserve cap_status; do
        rm -f "$WORK"/log.*
        (cd "$WORK" && pgbench "${CONN[@]}" -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$SECONDS_EACH" \
            -f "$name.sql" -l --log-prefix=log finops >"$WORK/out" 2>&1)
        # Per-transaction log: client, tx, latency (µs), script, epoch s, µs.
        cat "$WORK"/log.* | awk '{print $3}' | sort -n | awk -v name="$name" -v round="$round" -v secs="$SECONDS_EACH" '
            { v[NR] = $1 }
            END {
                p50 = v[int(NR * 0.50) + 1]; p99 = v[int(NR * 0.99) + 1];
                printf "{\"bench\": \"%s\", \"round\": %d, \"calls_per_s\": %.0f, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
                    name, round, NR / secs, p50 / 1000, p99 / 1000
            }'
    done
done
