"""asyncpg against a running finops-db: binary-format typed parameters, exact numerics,
zone-aware timestamps, SQLSTATE on errors, and a pool that resets connections it is given back
(its reset query runs on every release). Usage: asyncpg_check.py <host> <port>"""
import asyncio
import datetime as dt
import decimal
import sys

import asyncpg

HOST, PORT = sys.argv[1], int(sys.argv[2])
LOGIN = dict(host=HOST, port=PORT, user="finops", password="finops", database="finops")


async def main():
    conn = await asyncpg.connect(**LOGIN)
    ts = dt.datetime(2025, 9, 1, 12, 30, 45, 123456, tzinfo=dt.timezone.utc)
    row = await conn.fetchrow(
        "SELECT $1::BIGINT AS n, $2::NUMERIC AS amount, $3::TIMESTAMPTZ AS at",
        9_000_000_000,
        decimal.Decimal("12345678901234.123456"),
        ts,
    )
    assert row["n"] == 9_000_000_000, row
    assert row["amount"] == decimal.Decimal("12345678901234.123456"), row
    assert row["at"] == ts and row["at"].tzinfo is not None, row
    try:
        await conn.fetch("SELECT * FROM no_such_table")
        raise AssertionError("expected an error")
    except asyncpg.exceptions.UndefinedTableError:
        pass
    await conn.close()

    pool = await asyncpg.create_pool(**LOGIN, min_size=1, max_size=1)
    async with pool.acquire() as c:
        await c.execute("SET finops.currency = 'EUR'")
        assert await c.fetchval("SHOW finops.currency") == "EUR"
    # The same connection again, reset by the pool on release.
    async with pool.acquire() as c:
        assert await c.fetchval("SHOW finops.currency") == "USD"
        assert await c.fetchval("SELECT count(*) FROM finops.usage") > 0
    await pool.close()


asyncio.run(main())
print("asyncpg ok")
