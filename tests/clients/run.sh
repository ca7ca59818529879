#!/usr/bin/env bash
# Starts the built server with the demo data set (as the README's run command does) on a free
# loopback port and a scratch data directory, and runs psql meta-commands, KPI queries and a
# psycopg, an asyncpg and a JDBC session against it. Usage: run.sh path/to/finops-db
set -euo pipefail
bin="$1"
here="$(cd "$(dirname "$0")" && pwd)"
data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" --data-dir "$data" serve --demo --listen "127.0.0.1:$port" >"$data/server.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 1 1200); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
export PGHOST=127.0.0.1 PGPORT="$port" PGUSER=finops PGPASSWORD=finops PGDATABASE=finops
passed=0; failed=0
check() {
  local name="$1"; shift
  if "$@" >"$data/out.txt" 2>&1; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$data/out.txt"
  fi
}
psql_has() { # psql_has <expected substring> <psql args...>
  local want="$1"; shift
  local out; out="$(psql -X -v ON_ERROR_STOP=1 "$@" 2>&1)" || { echo "$out"; return 1; }
  grep -qF -- "$want" <<<"$out" || { echo "missing '$want' in:"; echo "$out"; return 1; }
}
check "psql \\l"  psql_has "finops" -c '\l'
check "psql \\dn" psql_has "providers" -c '\dn'
check "psql \\dt" psql_has "usage_t" -c 'CREATE TABLE usage_t (team TEXT, cost NUMERIC(20,6))' -c '\dt'
check "psql \\d"  psql_has "numeric" -c 'CREATE TABLE d_t (team TEXT, cost NUMERIC(20,6))' -c '\d d_t'
check "psql \\dv" psql_has "spend_v" -c 'CREATE VIEW spend_v AS SELECT 1 AS a' -c '\dv'
check "psql \\du" psql_has "finops" -c '\du'
check "psql \\df" psql_has "token_cost" -c '\df'
check "psql \\df+" psql_has "Cost in USD" -c '\df+ token_cost'
check "psql \\x"  psql_has "answer | 42" -c '\x' -c 'SELECT 42 AS answer'
psql_error() { # psql_error <expected SQLSTATE> <sql>
  local out; out="$(psql -X -v VERBOSITY=verbose -c "$2" 2>&1)" && { echo "no error: $out"; return 1; }
  grep -qF -- "$1" <<<"$out" || { echo "missing $1 in: $out"; return 1; }
}
check "psql \\d+" psql_has "Storage" -c '\d+ finops.owners'
check "psql \\dT" psql_has "List of data types" -c '\dT'
check "psql \\dm" psql_has "daily" -c '\dm'
check "psql \\dt+" psql_has "owners" -c '\dt+ finops.*'
check "psql \\l+" psql_has "Size" -c '\l+'
check "psql \\dm+" psql_has "daily" -c '\dm+'
check "psql \\dn+" psql_has "providers" -c '\dn+'
check "psql \\d+ view" psql_has "View definition:" -c '\d+ kpi.daily'
check "SET TIME ZONE" psql_has "Europe/Berlin" -c "SET TIME ZONE 'Europe/Berlin'" -c 'SHOW timezone'
check "RESET ALL" psql_has "ISO, MDY" -c 'SET DateStyle = SQL' -c 'RESET ALL' -c 'SHOW DateStyle'
check "kpi.summary" psql_has "cost_per_request" -c 'SELECT kpi, value FROM kpi.summary'
check "kpi.daily by team" psql_has "(12 rows)" -c "SELECT team, sum(cost) FROM kpi.daily WHERE day >= now() - INTERVAL '30 days' AND team IS NOT NULL GROUP BY team"
check "unpriced usage" psql_has "acme-internal-llm-v2" -c 'SELECT model, requests FROM finops.unpriced_usage'
printf 'event_id,ts,provider,model,team,input_tokens,output_tokens\nci-1,2026-01-01T00:00:00Z,openai,gpt-4o,ci,10,5\n' >"$data/in.csv"
check "psql \\copy in" psql_has "COPY 1" -c "\\copy finops.usage_events (event_id, ts, provider, model, team, input_tokens, output_tokens) FROM '$data/in.csv' WITH (FORMAT csv, HEADER)"
check "REFRESH" psql_has "REFRESH MATERIALIZED VIEW" -c 'REFRESH MATERIALIZED VIEW kpi.daily'
check "psql SQLSTATE 42P01" psql_error 42P01 'SELECT * FROM nope'
check "psql SQLSTATE 42601" psql_error 42601 'SELEC 1' 
check "psycopg" python3 "$here/psycopg_check.py" "host=127.0.0.1 port=$port user=finops password=finops dbname=finops"
check "asyncpg" python3 "$here/asyncpg_check.py" 127.0.0.1 "$port"
check "jdbc" java -cp /usr/share/java/postgresql.jar "$here/JdbcCheck.java" \
  "jdbc:postgresql://127.0.0.1:$port/finops" finops finops
echo "clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
