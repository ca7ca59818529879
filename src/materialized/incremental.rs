//! Which view definitions can be refreshed incrementally, decided on the DataFusion logical plan,
//! and the plans an incremental refresh runs: per-bucket row counts of the input, and the
//! defining query restricted to the buckets that changed.
//!
//! Eligible: an aggregate (SUM, COUNT, MIN, MAX, AVG) over one table or view scan (with only
//! filters, projections and aliases in between), grouped among others by a time bucket of a
//! timestamp column (`date_trunc`, `date_bin`, `CAST(ts AS DATE)`) that the output keeps as a
//! column; only projections, HAVING filters and aliases above. The scan may also be joined (inner
//! or left) to an aggregate of a scan grouped by the *same* bucket, on that bucket: `kpi.daily`'s
//! "first occurrence of a prompt that day". Every group of that inner aggregate lies inside one
//! bucket, so restricting both scans to the buckets that changed recomputes those buckets exactly.
//! Anything else is refreshed fully. It must not run queries or touch storage.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ExprSchema, ScalarValue};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, Expr, Filter, JoinType, LogicalPlan, LogicalPlanBuilder, Operator, cast, lit,
};

use crate::error::Result;

const DECOMPOSABLE: [&str; 5] = ["sum", "count", "min", "max", "avg"];

/// How an eligible view is refreshed incrementally.
#[derive(Debug, Clone)]
pub struct Incremental {
    /// The aggregate's input: what the per-bucket row counts are taken over.
    input: Arc<LogicalPlan>,
    /// The time-bucket grouping expression.
    bucket: Expr,
    /// The timestamp column the bucket is computed from, in the aggregate input's schema.
    time_column: Column,
    /// Type of `time_column`.
    time_type: DataType,
    /// Type of the bucket values.
    bucket_type: DataType,
    /// Position of the bucket among the view's output columns.
    output_index: usize,
    /// When the scan is joined to an aggregate by the same bucket: the timestamp column of that
    /// aggregate's input, restricted alongside `time_column`, and that input.
    joined: Option<Bucketed>,
    /// Which side of that join the scan is on.
    scan_side: Side,
}

/// A side of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// A timestamp column and the plan it is a column of.
type Bucketed = (Column, Arc<LogicalPlan>);

/// Decide whether `plan` (the unoptimized plan of a view definition) is incrementally refreshable.
pub fn analyse(plan: &LogicalPlan) -> Option<Incremental> {
    let mut depth = 0;
    let mut node = plan;
    let aggregate = loop {
        match node {
            LogicalPlan::Projection(p) => node = p.input.as_ref(),
            LogicalPlan::Filter(f) => node = f.input.as_ref(),
            LogicalPlan::SubqueryAlias(a) => node = a.input.as_ref(),
            LogicalPlan::Aggregate(agg) => break agg,
            _ => return None,
        }
        depth += 1;
    };
    if !expressions_safe(plan, depth) || !aggregate_safe(aggregate) {
        return None;
    }
    let input_schema = aggregate.input.schema();
    let (index, time_column) = aggregate
        .group_expr
        .iter()
        .enumerate()
        .find_map(|(i, e)| bucket_column(e, input_schema).map(|c| (i, c)))?;
    let bucket = aggregate.group_expr[index].clone();
    let (input, joined, scan_side) = if input_is_single_scan(&aggregate.input) {
        (Arc::clone(&aggregate.input), None, Side::Left)
    } else {
        let (scan, inner, side) = bucket_join(&aggregate.input, &bucket, &time_column)?;
        (scan, Some(inner), side)
    };
    let time_type = input_schema
        .field_from_column(&time_column)
        .ok()?
        .data_type()
        .clone();
    let bucket_type = aggregate.schema.field(index).data_type().clone();
    if !matches!(
        bucket_type,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    ) {
        return None;
    }
    let output_index = track_output(plan, depth, index)?;
    Some(Incremental {
        input,
        bucket,
        time_column,
        time_type,
        bucket_type,
        output_index,
        joined,
        scan_side,
    })
}

/// For an aggregate input that joins the scan holding `time_column` to an aggregate grouped by
/// the same bucket on `bucket`: that scan, the timestamp column of the inner aggregate's input
/// with that input, and the side of the join the scan is on. Every row of the scan must stay:
/// an inner join, or an outer join that keeps the scan's side (`scan LEFT JOIN aggregate` or
/// `aggregate RIGHT JOIN scan`, which builds the join's hash table from the smaller aggregate).
/// `None` for any other shape.
fn bucket_join(
    input: &LogicalPlan,
    bucket: &Expr,
    time_column: &Column,
) -> Option<(Arc<LogicalPlan>, Bucketed, Side)> {
    let LogicalPlan::Join(join) = input else {
        return None;
    };
    let side = match join.join_type {
        JoinType::Inner | JoinType::Left => Side::Left,
        JoinType::Right => Side::Right,
        _ => return None,
    };
    let (scan, other) = match side {
        Side::Left => (&join.left, &join.right),
        Side::Right => (&join.right, &join.left),
    };
    if !input_is_single_scan(scan)
        || !scan.schema().has_column(time_column)
        || join.filter.as_ref().is_some_and(|f| !expr_safe(f))
        || join.on.iter().any(|(l, r)| !expr_safe(l) || !expr_safe(r))
    {
        return None;
    }
    // The equalities of the join: its key pairs and the conjuncts of its filter.
    let mut equalities: Vec<(Expr, Expr)> = join.on.clone();
    if let Some(filter) = &join.filter {
        for conjunct in split_conjunction(filter) {
            if let Expr::BinaryExpr(b) = conjunct
                && b.op == Operator::Eq
            {
                equalities.push((b.left.as_ref().clone(), b.right.as_ref().clone()));
            }
        }
    }
    let other_schema = other.schema();
    equalities.into_iter().find_map(|(a, b)| {
        let key = match (&a, &b) {
            (e, Expr::Column(c)) | (Expr::Column(c), e)
                if e == bucket && other_schema.has_column(c) =>
            {
                c.clone()
            }
            _ => return None,
        };
        let inner_time = inner_bucket(other, key, bucket)?;
        Some((Arc::clone(scan), inner_time, side))
    })
}

/// Follow the join key `column` of `plan` down through aliases and projections to an aggregate
/// over a single scan; when it is that aggregate's grouping by the same bucket as `bucket`, the
/// timestamp column it buckets and the aggregate's input.
fn inner_bucket(plan: &LogicalPlan, mut column: Column, bucket: &Expr) -> Option<Bucketed> {
    let mut node = plan;
    loop {
        let index = node.schema().index_of_column(&column).ok()?;
        if let LogicalPlan::Aggregate(agg) = node {
            if !input_is_single_scan(&agg.input)
                || !agg.group_expr.iter().all(expr_safe)
                || !agg.aggr_expr.iter().all(expr_safe)
            {
                return None;
            }
            let group = agg.group_expr.get(index)?;
            let inner_time = bucket_column(group, agg.input.schema())?;
            return (same_bucket(group, bucket)).then(|| (inner_time, Arc::clone(&agg.input)));
        }
        if !node.expressions().iter().all(expr_safe) {
            return None;
        }
        (node, column) = column_below(node, index, column)?;
    }
}

/// The input of an alias, filter or projection `node` and the column of it that output column
/// `index` (`column`) passes up unchanged; `None` for any other node or a computed column.
fn column_below(
    node: &LogicalPlan,
    index: usize,
    column: Column,
) -> Option<(&LogicalPlan, Column)> {
    match node {
        LogicalPlan::SubqueryAlias(a) => Some((
            a.input.as_ref(),
            Column::from(a.input.schema().qualified_field(index)),
        )),
        LogicalPlan::Filter(f) => Some((f.input.as_ref(), column)),
        LogicalPlan::Projection(p) => match p.expr.get(index)?.clone().unalias_nested().data {
            Expr::Column(c) => Some((p.input.as_ref(), c)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether two bucket expressions bucket alike, whatever column they read.
fn same_bucket(a: &Expr, b: &Expr) -> bool {
    let erase = |e: &Expr| {
        e.clone()
            .transform(|e| {
                Ok(match e {
                    Expr::Column(_) => Transformed::yes(Expr::Column(Column::from_name("t"))),
                    other => Transformed::no(other),
                })
            })
            .map(|t| t.data)
            .ok()
    };
    match (erase(a), erase(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The `depth`-th node below the top of a single-input chain.
fn plan_at(plan: &LogicalPlan, depth: usize) -> &LogicalPlan {
    let mut node = plan;
    for _ in 0..depth {
        match node.inputs().first() {
            Some(input) => node = input,
            None => break,
        }
    }
    node
}

/// No volatile functions and no subqueries in the nodes above the aggregate.
fn expressions_safe(plan: &LogicalPlan, depth: usize) -> bool {
    (0..depth).all(|d| plan_at(plan, d).expressions().iter().all(expr_safe))
}

fn expr_safe(expr: &Expr) -> bool {
    !expr.is_volatile()
        && !expr
            .exists(|e| {
                Ok(matches!(
                    e,
                    Expr::ScalarSubquery(_)
                        | Expr::Exists(_)
                        | Expr::InSubquery(_)
                        | Expr::OuterReferenceColumn(..)
                        | Expr::GroupingSet(_)
                ))
            })
            .unwrap_or(true)
}

fn aggregate_safe(aggregate: &Aggregate) -> bool {
    aggregate.group_expr.iter().all(expr_safe)
        && aggregate.aggr_expr.iter().all(|e| {
            expr_safe(e)
                && match e.clone().unalias() {
                    Expr::AggregateFunction(f) => DECOMPOSABLE.contains(&f.func.name()),
                    _ => false,
                }
        })
}

/// Filters, projections and aliases down to exactly one table scan.
fn input_is_single_scan(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {
            plan.expressions().iter().all(expr_safe)
                && plan.inputs().len() == 1
                && plan
                    .inputs()
                    .first()
                    .is_some_and(|i| input_is_single_scan(i))
        }
        LogicalPlan::TableScan(scan) => scan.fetch.is_none(),
        _ => false,
    }
}

/// The timestamp column a bucket expression truncates, if `expr` is one.
fn bucket_column(expr: &Expr, schema: &datafusion::common::DFSchema) -> Option<Column> {
    let literal = |e: &Expr| matches!(e, Expr::Literal(..));
    let (column, cast_to_date) = match expr {
        Expr::ScalarFunction(f)
            if f.func.name() == "date_trunc" && f.args.len() == 2 && literal(&f.args[0]) =>
        {
            (&f.args[1], false)
        }
        Expr::ScalarFunction(f)
            if f.func.name() == "date_bin"
                && (f.args.len() == 2 || f.args.len() == 3)
                && literal(&f.args[0])
                && f.args.get(2).is_none_or(literal) =>
        {
            (&f.args[1], false)
        }
        Expr::Cast(c) if c.field.data_type() == &DataType::Date32 => (c.expr.as_ref(), true),
        _ => return None,
    };
    let Expr::Column(column) = column else {
        return None;
    };
    match schema.field_from_column(column).ok()?.data_type() {
        DataType::Timestamp(_, None) => Some(column.clone()),
        // A date is the UTC day only when the timestamp's zone is UTC: the restriction to
        // `ts >= midnight` would cut a local day in two otherwise.
        DataType::Timestamp(_, Some(tz)) if !cast_to_date || is_utc(tz.as_ref()) => {
            Some(column.clone())
        }
        _ => None,
    }
}

fn is_utc(tz: &str) -> bool {
    matches!(tz, "UTC" | "utc" | "Z" | "+00:00" | "+00" | "Etc/UTC")
}

/// The table a single-scan `plan` reads and the name of the column of it that `column` is, when
/// `column` is passed up unchanged (only renamed) from the scan.
fn source_column(
    plan: &LogicalPlan,
    column: &Column,
    catalog: &str,
    schema: &str,
) -> Option<(String, String)> {
    let mut node = plan;
    let mut column = column.clone();
    loop {
        let index = node.schema().index_of_column(&column).ok()?;
        if let LogicalPlan::TableScan(scan) = node {
            let table = scan.table_name.clone().resolve(catalog, schema);
            let (_, field) = node.schema().qualified_field(index);
            return Some((
                format!("{}.{}", table.schema, table.table),
                field.name().clone(),
            ));
        }
        (node, column) = column_below(node, index, column)?;
    }
}

/// Follow the bucket from the aggregate's output up to the view's output columns.
fn track_output(plan: &LogicalPlan, depth: usize, mut index: usize) -> Option<usize> {
    for d in (0..depth).rev() {
        let node = plan_at(plan, d);
        let input = node.inputs().first().copied()?;
        match node {
            LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {}
            LogicalPlan::Projection(p) => {
                let column = Column::from(input.schema().qualified_field(index));
                index = p.expr.iter().position(|e| match e {
                    Expr::Column(c) => *c == column,
                    Expr::Alias(a) => matches!(a.expr.as_ref(), Expr::Column(c) if *c == column),
                    _ => false,
                })?;
            }
            _ => return None,
        }
    }
    Some(index)
}

impl Incremental {
    /// Rows per bucket of the input: `SELECT bucket, count(*) ... GROUP BY bucket`.
    pub fn bucket_counts_plan(&self) -> Result<LogicalPlan> {
        Ok(LogicalPlanBuilder::from(Arc::clone(&self.input))
            .aggregate(
                vec![self.bucket.clone().alias("bucket")],
                vec![count(lit(1)).alias("n")],
            )?
            .build()?)
    }

    /// Rows per bucket of the input from bucket `from` on (and the NULL bucket).
    pub fn bucket_counts_plan_from(&self, from: i64) -> Result<LogicalPlan> {
        Ok(LogicalPlanBuilder::from(Arc::clone(&self.input))
            .filter(self.since_predicate(&self.time_column, Some(from))?)?
            .aggregate(
                vec![self.bucket.clone().alias("bucket")],
                vec![count(lit(1)).alias("n")],
            )?
            .build()?)
    }

    /// A one-row plan giving the bucket of the instant `micros` (microseconds since the epoch),
    /// computed by the view's own bucket expression; `None` when the time column does not hold
    /// microseconds.
    pub fn bucket_of_plan(&self, micros: i64) -> Result<Option<LogicalPlan>> {
        let DataType::Timestamp(TimeUnit::Microsecond, tz) = &self.time_type else {
            return Ok(None);
        };
        let instant = lit(ScalarValue::TimestampMicrosecond(Some(micros), tz.clone()));
        let bucket = self
            .bucket
            .clone()
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) if c == self.time_column => Transformed::yes(instant.clone()),
                    other => Transformed::no(other),
                })
            })?
            .data;
        Ok(Some(
            LogicalPlanBuilder::empty(true)
                .project(vec![bucket.alias("bucket")])?
                .build()?,
        ))
    }

    /// The tables the bucketed scans read and the column of each that the time column is,
    /// `schema.table` and column name; `None` when a time column is computed rather than read.
    pub fn time_sources(&self, catalog: &str, schema: &str) -> Option<Vec<(String, String)>> {
        let mut sources = vec![source_column(
            &self.input,
            &self.time_column,
            catalog,
            schema,
        )?];
        if let Some((column, input)) = &self.joined {
            sources.push(source_column(input, column, catalog, schema)?);
        }
        Some(sources)
    }

    /// The defining query restricted to the buckets from `from` on (and the NULL bucket);
    /// `from = None` restricts it to the NULL bucket.
    pub fn restricted_plan(&self, plan: &LogicalPlan, from: Option<i64>) -> Result<LogicalPlan> {
        let outer = self.since_predicate(&self.time_column, from)?;
        let inner = match &self.joined {
            Some((column, _)) => Some(self.since_predicate(column, from)?),
            None => None,
        };
        restrict(plan, &outer, inner.as_ref(), self.scan_side)
    }

    /// `column` is in bucket `from` or later, or NULL; only NULL when `from` is `None`.
    fn since_predicate(&self, column: &Column, from: Option<i64>) -> Result<Expr> {
        let time = Expr::Column(column.clone());
        Ok(match from {
            Some(start) => {
                let start = self.bucket_scalar(start)?;
                time.clone()
                    .gt_eq(cast(lit(start), self.time_type.clone()))
                    .or(time.is_null())
            }
            None => time.is_null(),
        })
    }

    /// Which rows of the stored result to keep when the buckets from `from` on are recomputed.
    pub fn keep_mask(&self, column: &ArrayRef, from: Option<i64>) -> Option<BooleanArray> {
        let values = bucket_values(column)?;
        Some(
            values
                .into_iter()
                .map(|v| {
                    Some(
                        matches!((v, from), (Some(v), Some(f)) if v < f)
                            || (v.is_some() && from.is_none()),
                    )
                })
                .collect(),
        )
    }

    /// Where the bucket is among the view's output columns.
    pub fn output_index(&self) -> usize {
        self.output_index
    }

    fn bucket_scalar(&self, value: i64) -> Result<ScalarValue> {
        let out_of_range = || crate::error::Error::Internal(format!("bucket {value} out of range"));
        Ok(match &self.bucket_type {
            DataType::Date32 => {
                ScalarValue::Date32(Some(i32::try_from(value).map_err(|_| out_of_range())?))
            }
            DataType::Date64 => ScalarValue::Date64(Some(value)),
            DataType::Timestamp(unit, tz) => match unit {
                TimeUnit::Second => ScalarValue::TimestampSecond(Some(value), tz.clone()),
                TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(value), tz.clone()),
                TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(value), tz.clone()),
                TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(value), tz.clone()),
            },
            other => {
                return Err(crate::error::Error::Internal(format!(
                    "bucket of type {other} in an incremental view"
                )));
            }
        })
    }
}

/// Put `predicate` between the aggregate and its input; when that input is the bucket join,
/// put it on the join's scan side (`scan_side`) instead and `inner` between the joined
/// aggregate and its input.
fn restrict(
    plan: &LogicalPlan,
    predicate: &Expr,
    inner: Option<&Expr>,
    scan_side: Side,
) -> Result<LogicalPlan> {
    if let LogicalPlan::Aggregate(agg) = plan {
        let input = match (agg.input.as_ref(), inner) {
            (LogicalPlan::Join(join), Some(inner)) => {
                let (scan, other) = match scan_side {
                    Side::Left => (&join.left, &join.right),
                    Side::Right => (&join.right, &join.left),
                };
                let scan =
                    LogicalPlan::Filter(Filter::try_new(predicate.clone(), Arc::clone(scan))?);
                let other = restrict(other, inner, None, scan_side)?;
                let children = match scan_side {
                    Side::Left => vec![scan, other],
                    Side::Right => vec![other, scan],
                };
                agg.input
                    .with_new_exprs(agg.input.expressions(), children)?
            }
            _ => LogicalPlan::Filter(Filter::try_new(predicate.clone(), Arc::clone(&agg.input))?),
        };
        let aggregate = Aggregate::try_new(
            Arc::new(input),
            agg.group_expr.clone(),
            agg.aggr_expr.clone(),
        )?;
        return Ok(LogicalPlan::Aggregate(aggregate));
    }
    let inputs = plan
        .inputs()
        .into_iter()
        .map(|i| restrict(i, predicate, inner, scan_side))
        .collect::<Result<Vec<_>>>()?;
    Ok(plan.with_new_exprs(plan.expressions(), inputs)?)
}

/// Bucket values of an output column as integers (days, or the timestamp's unit).
pub fn bucket_values(array: &ArrayRef) -> Option<Vec<Option<i64>>> {
    Some(match array.data_type() {
        DataType::Date32 => collect(array.as_primitive_opt::<Date32Type>()?, i64::from),
        DataType::Date64 => collect(array.as_primitive_opt::<Date64Type>()?, |v| v),
        DataType::Timestamp(TimeUnit::Second, _) => {
            collect(array.as_primitive_opt::<TimestampSecondType>()?, |v| v)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            collect(array.as_primitive_opt::<TimestampMillisecondType>()?, |v| v)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            collect(array.as_primitive_opt::<TimestampMicrosecondType>()?, |v| v)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            collect(array.as_primitive_opt::<TimestampNanosecondType>()?, |v| v)
        }
        _ => return None,
    })
}

fn collect<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    array: &datafusion::arrow::array::PrimitiveArray<T>,
    to_i64: impl Fn(T::Native) -> i64,
) -> Vec<Option<i64>> {
    (0..array.len())
        .map(|i| array.is_valid(i).then(|| to_i64(array.value(i))))
        .collect()
}

/// Schema-qualified names of the tables `plan` reads, views expanded to what they read.
pub fn dependencies(plan: &LogicalPlan, catalog: &str, schema: &str) -> Vec<String> {
    let mut names = Vec::new();
    collect_dependencies(plan, catalog, schema, &mut names);
    names.sort();
    names.dedup();
    names
}

fn collect_dependencies(plan: &LogicalPlan, catalog: &str, schema: &str, out: &mut Vec<String>) {
    // The closure cannot fail; the result carries no information.
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let resolved = scan.table_name.clone().resolve(catalog, schema);
            out.push(format!("{}.{}", resolved.schema, resolved.table));
            if let Ok(provider) = source_as_provider(&scan.source)
                && let Some(inner) = provider.get_logical_plan()
            {
                collect_dependencies(&inner, catalog, schema, out);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
}
