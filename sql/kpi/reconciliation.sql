-- kpi.reconciliation: computed cost versus billed cost, per provider, UTC day, model and (where
-- the provider's bills carry one) project. One row per key present on either side (full outer
-- join): usage nobody billed and bill lines with no usage behind them both show.
--   computed      finops.usage rows priced from the price book (cost_source = 'price_book'),
--                 so a bill marked as source of truth is never compared with itself
--   billed        finops.bills_all: every registered bill, summed reported_cost
--   model         canonical_model(provider, model), so a bill's billing name and a feed's
--                 dated id meet; the reported id when the price book does not know it
--   project       compared only for providers whose bills name projects; NULL otherwise
--   computed_cost sum of cost (adjustments applied); unpriced usage rows count in
--                 unpriced_rows and add nothing, so check them before trusting a difference
--   difference    computed_cost - billed_cost, a missing side counting as 0
--   relative_difference  difference / billed_cost; NULL when nothing was billed
--   status        'matched', 'not_billed' (usage only) or 'no_usage' (bill only)
CREATE VIEW kpi.reconciliation AS
WITH bills AS (
    SELECT provider,
           date_trunc('day', ts) AS day,
           COALESCE(canonical_model(provider, model), model) AS model,
           project,
           SUM(reported_cost) AS billed_cost,
           COUNT(*) AS bill_lines
    FROM finops.bills_all
    GROUP BY provider, date_trunc('day', ts), COALESCE(canonical_model(provider, model), model),
             project
),
bill_scope AS (
    SELECT provider, bool_or(project IS NOT NULL) AS by_project
    FROM bills
    GROUP BY provider
),
computed AS (
    SELECT u.provider,
           date_trunc('day', u.ts) AS day,
           COALESCE(canonical_model(u.provider, u.model), u.model) AS model,
           CASE WHEN s.by_project THEN u.project END AS project,
           SUM(u.cost) AS computed_cost,
           COUNT(*) AS usage_rows,
           SUM(CASE WHEN u.priced THEN 0 ELSE 1 END) AS unpriced_rows
    FROM finops.usage u
    LEFT JOIN bill_scope s ON s.provider = u.provider
    WHERE u.cost_source = 'price_book'
    GROUP BY u.provider, date_trunc('day', u.ts),
             COALESCE(canonical_model(u.provider, u.model), u.model),
             CASE WHEN s.by_project THEN u.project END
)
SELECT COALESCE(c.provider, b.provider) AS provider,
       COALESCE(c.day, b.day) AS day,
       COALESCE(c.model, b.model) AS model,
       COALESCE(c.project, b.project) AS project,
       c.computed_cost,
       b.billed_cost,
       COALESCE(c.computed_cost, 0) - COALESCE(b.billed_cost, 0) AS difference,
       CASE WHEN b.billed_cost <> 0
            THEN (COALESCE(c.computed_cost, 0) - b.billed_cost) / b.billed_cost END
           AS relative_difference,
       COALESCE(c.usage_rows, 0) AS usage_rows,
       COALESCE(c.unpriced_rows, 0) AS unpriced_rows,
       COALESCE(b.bill_lines, 0) AS bill_lines,
       CASE WHEN c.provider IS NULL THEN 'no_usage'
            WHEN b.provider IS NULL THEN 'not_billed'
            ELSE 'matched' END AS status
FROM computed c
FULL OUTER JOIN bills b
  ON c.provider = b.provider
 AND c.day = b.day
 AND c.model = b.model
 AND c.project IS NOT DISTINCT FROM b.project;
