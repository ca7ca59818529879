"""psycopg 3 against a running finops-db: typed parameters, exact numerics, zone-aware timestamps,
SQLSTATE on errors, and savepoints. Usage: psycopg_check.py <conninfo>"""
import datetime as dt
import decimal
import sys

import psycopg
from psycopg import errors

with psycopg.connect(sys.argv[1], autocommit=False) as conn:
    with conn.cursor() as cur:
        ts = dt.datetime(2025, 9, 1, 12, 30, 45, 123456, tzinfo=dt.timezone.utc)
        cur.execute(
            "SELECT %s::BIGINT AS n, %s::TEXT AS t, %s::NUMERIC AS amount, %s::TIMESTAMPTZ AS at",
            (9_000_000_000, "it's, \"quoted\"", decimal.Decimal("12345678901234.123456"), ts),
        )
        n, t, amount, at = cur.fetchone()
        assert n == 9_000_000_000, n
        assert t == "it's, \"quoted\"", t
        assert amount == decimal.Decimal("12345678901234.123456"), amount
        assert at.tzinfo is not None and at == ts, at
        try:
            cur.execute("SELECT * FROM no_such_table")
            raise AssertionError("expected an error")
        except errors.UndefinedTable:
            conn.rollback()
    # psycopg wraps statements in savepoints inside transaction blocks.
    with conn.transaction():
        with conn.transaction():
            conn.execute("SELECT 1")
    # An error in a nested block rolls back to its savepoint; the outer block goes on.
    with conn.transaction():
        try:
            with conn.transaction():
                conn.execute("SELECT * FROM no_such_table")
            raise AssertionError("expected an error")
        except errors.UndefinedTable:
            pass
        assert conn.execute("SELECT 1").fetchone()[0] == 1
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    # Parameters without casts, as applications write them: text against a text column, and a
    # numeric that stays numeric where the context alone would make it an integer.
    teams = conn.execute(
        "SELECT count(*) FROM finops.usage_events WHERE provider = %s", ("openai",)
    ).fetchone()[0]
    assert teams > 0, teams
    assert conn.execute("SELECT count(*) FROM finops.usage_events WHERE provider IN (%s, %s)",
                        ("openai", "anthropic")).fetchone()[0] >= teams
    assert conn.execute("SELECT %s * 2", (decimal.Decimal("0.5"),)).fetchone()[0] == 1
    # COPY TO: one row per message (psycopg reads rows from messages) and the row count.
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT event_id, input_tokens FROM finops.usage_events "
                      "ORDER BY event_id LIMIT 2500) TO STDOUT") as copy:
            rows = list(copy.rows())
        assert len(rows) == 2500, len(rows)
        assert cur.rowcount == 2500, cur.rowcount
        with cur.copy("COPY (SELECT 1 AS a WHERE false) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
            out = b"".join(bytes(b) for b in copy)
        assert out == b"a\n", out
print("psycopg ok")
