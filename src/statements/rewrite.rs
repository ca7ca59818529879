//! Syntax-tree rewrites for Postgres constructs DataFusion does not plan, applied after the
//! Postgres-compatible parser's own rules.
//!
//! Only rewrites with the same meaning belong here; never a rewrite of SQL text.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, CastKind, DataType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Ident, ObjectNamePart, OrderByKind, Query, SelectItem, SetExpr,
    Statement, TableFactor, Value, VisitMut, VisitorMut, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrite `statement`; `None` when nothing changed.
pub fn rewrite(statement: &Statement) -> Option<Statement> {
    let mut rewritten = statement.clone();
    let mut arrays = ArraySubquery { changed: false };
    let _ = rewritten.visit(&mut arrays);
    let mut escapes = LikeEscape { changed: false };
    let _ = rewritten.visit(&mut escapes);
    let mut scalars = CatalogScalarSubquery { changed: false };
    let _ = rewritten.visit(&mut scalars);
    let mut ordinals = OrderByOrdinal { changed: false };
    let _ = rewritten.visit(&mut ordinals);
    let mut viewdefs = ViewDefinition { changed: false };
    let _ = rewritten.visit(&mut viewdefs);
    let mut casts = RegclassCast { changed: false };
    let _ = rewritten.visit(&mut casts);
    let mut lookups = RegLookup { changed: false };
    let _ = rewritten.visit(&mut lookups);
    let mut columns = InformationSchemaColumns { changed: false };
    let _ = rewritten.visit(&mut columns);
    let mut json = JsonCast { changed: false };
    let _ = rewritten.visit(&mut json);
    let mut expand = ExpandArray { changed: false };
    let _ = rewritten.visit(&mut expand);
    let mut regproc = RegprocName { changed: false };
    let _ = rewritten.visit(&mut regproc);
    let mut repeats = RepeatedColumns { changed: false };
    let _ = rewritten.visit(&mut repeats);
    let mut added = AddedCatalogTables { changed: false };
    let _ = rewritten.visit(&mut added);
    let mut options = RelOptions { changed: false };
    let text = rewritten.to_string();
    if text.contains("pg_catalog.pg_class") || text.contains("pg_catalog.pg_namespace") {
        let _ = rewritten.visit(&mut options);
    }
    let changed = arrays.changed
        || escapes.changed
        || scalars.changed
        || ordinals.changed
        || viewdefs.changed
        || lookups.changed
        || casts.changed
        || columns.changed
        || json.changed
        || expand.changed
        || regproc.changed
        || repeats.changed
        || added.changed
        || options.changed;
    if !changed {
        return None;
    }
    super::labels::keep(statement, &mut rewritten);
    Some(rewritten)
}

/// `text` parsed as one Postgres expression (what a rewrite puts in place of another).
fn sql_expr(text: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// `ORDER BY n`, where the n-th output column is an unnamed expression other than a column
/// (`round(sum(cost), 2)`, `sum(cost) / count(*)`), → `ORDER BY` that expression. DataFusion
/// resolves such an ordinal by expanding the select list again and then rejects the
/// expression's inputs as ungrouped columns; the expression itself it matches to the output
/// column, which is what the ordinal means.
struct OrderByOrdinal {
    changed: bool,
}

impl VisitorMut for OrderByOrdinal {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Self::Break> {
        let Query { body, order_by, .. } = query;
        let (SetExpr::Select(select), Some(order_by)) = (body.as_ref(), order_by.as_mut()) else {
            return ControlFlow::Continue(());
        };
        let OrderByKind::Expressions(keys) = &mut order_by.kind else {
            return ControlFlow::Continue(());
        };
        for key in keys {
            let Expr::Value(value) = &key.expr else {
                continue;
            };
            let Value::Number(n, _) = &value.value else {
                continue;
            };
            let Some(item) = n
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| select.projection.get(i))
            else {
                continue;
            };
            if let SelectItem::UnnamedExpr(expr) = item
                && !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
            {
                key.expr = expr.clone();
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }
}

/// `pg_get_viewdef(oid [, pretty])` → the view's definition looked up by its `pg_class` oid in
/// `pg_views` and `pg_matviews` (NULL for a relation that is not a view). psql's `\d+` of a
/// view or materialized view sends it; the catalog crate has no such function, and the
/// definitions are only known to the catalog tables.
struct ViewDefinition {
    changed: bool,
}

impl VisitorMut for ViewDefinition {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        let Expr::Function(function) = expr else {
            return ControlFlow::Continue(());
        };
        let name = function.name.to_string().to_ascii_lowercase();
        if name != "pg_get_viewdef" && name != "pg_catalog.pg_get_viewdef" {
            return ControlFlow::Continue(());
        }
        let FunctionArguments::List(list) = &function.args else {
            return ControlFlow::Continue(());
        };
        let (Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(oid))), 1..=2) =
            (list.args.first(), list.args.len())
        else {
            return ControlFlow::Continue(());
        };
        let lookup = format!(
            "(SELECT max(viewdef_d.definition) FROM pg_catalog.pg_class viewdef_c \
             JOIN pg_catalog.pg_namespace viewdef_n ON viewdef_n.oid = viewdef_c.relnamespace \
             JOIN (SELECT schemaname, viewname AS relname, definition FROM pg_catalog.pg_views \
                   UNION ALL \
                   SELECT schemaname, matviewname, definition FROM pg_catalog.pg_matviews) viewdef_d \
               ON viewdef_d.schemaname = viewdef_n.nspname \
              AND viewdef_d.relname = viewdef_c.relname \
             WHERE viewdef_c.oid = {oid})"
        );
        if let Some(subquery) = sql_expr(&lookup) {
            *expr = subquery;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `to_regclass(name)`, `to_regtype(name)`, `to_regnamespace(name)` and `to_regproc(name)` → the
/// object's oid looked up in the catalog, NULL when there is none (where a `::regclass` cast is
/// an error): scripts and migration tools ask `to_regclass('schema.table') IS NULL` before
/// creating a table. A relation name may be schema-qualified; an unqualified one is looked for
/// in `pg_catalog` and the current schema, as Postgres' default `search_path` does. The name is
/// a constant (a literal or a parameter): DataFusion cannot plan the lookup per row.
struct RegLookup {
    changed: bool,
}

/// The lookup functions, as `RegLookup::lookup` knows them.
const REG_LOOKUPS: [&str; 4] = ["to_regclass", "to_regtype", "to_regnamespace", "to_regproc"];

impl RegLookup {
    /// Which lookup `function` calls (`to_regclass` or `pg_catalog.to_regclass`, any case), if any.
    fn called(function: &Function) -> Option<&'static str> {
        fn ident(part: &ObjectNamePart) -> Option<&str> {
            match part {
                ObjectNamePart::Identifier(ident) => Some(ident.value.as_str()),
                _ => None,
            }
        }
        let name = match function.name.0.as_slice() {
            [name] => ident(name)?,
            [schema, name] if ident(schema)?.eq_ignore_ascii_case("pg_catalog") => ident(name)?,
            _ => return None,
        };
        REG_LOOKUPS
            .into_iter()
            .find(|lookup| lookup.eq_ignore_ascii_case(name))
    }

    fn lookup(function: &str, name: &Expr) -> Option<String> {
        let name = format!("CAST({name} AS TEXT)");
        Some(match function {
            "to_regclass" => format!(
                "(SELECT max(reg_c.oid) FROM pg_catalog.pg_class reg_c \
                 JOIN pg_catalog.pg_namespace reg_n ON reg_c.relnamespace = reg_n.oid \
                 WHERE (array_length(parse_ident({name}), 1) = 1 \
                        AND reg_n.nspname IN ('pg_catalog', current_schema()) \
                        AND reg_c.relname = parse_ident({name})[1]) \
                    OR (array_length(parse_ident({name}), 1) = 2 \
                        AND reg_n.nspname = parse_ident({name})[1] \
                        AND reg_c.relname = parse_ident({name})[2]))"
            ),
            "to_regtype" => format!(
                "(SELECT max(reg_t.oid) FROM pg_catalog.pg_type reg_t \
                 WHERE reg_t.typname = CASE lower(btrim({name})) \
                   WHEN 'integer' THEN 'int4' WHEN 'int' THEN 'int4' WHEN 'bigint' THEN 'int8' \
                   WHEN 'smallint' THEN 'int2' WHEN 'real' THEN 'float4' \
                   WHEN 'double precision' THEN 'float8' WHEN 'boolean' THEN 'bool' \
                   WHEN 'decimal' THEN 'numeric' WHEN 'character varying' THEN 'varchar' \
                   WHEN 'character' THEN 'bpchar' \
                   WHEN 'timestamp with time zone' THEN 'timestamptz' \
                   WHEN 'timestamp without time zone' THEN 'timestamp' \
                   WHEN 'time without time zone' THEN 'time' \
                   ELSE regexp_replace(btrim({name}), '^pg_catalog\\.', '') END)"
            ),
            "to_regnamespace" => format!(
                "(SELECT max(reg_n.oid) FROM pg_catalog.pg_namespace reg_n \
                 WHERE reg_n.nspname = {name})"
            ),
            "to_regproc" => format!(
                "(SELECT CASE WHEN count(*) = 1 THEN max(reg_f.oid) END \
                 FROM pg_catalog.pg_proc reg_f \
                 WHERE reg_f.proname = regexp_replace({name}, '^pg_catalog\\.', ''))"
            ),
            _ => return None,
        })
    }
}

impl VisitorMut for RegLookup {
    type Break = ();

    /// A lookup that is a whole output column keeps the function's name as the column's, as
    /// in Postgres (unless two columns would then share it, which DataFusion refuses).
    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Self::Break> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let lookup_name = |item: &SelectItem| match item {
            SelectItem::UnnamedExpr(Expr::Function(function)) => Self::called(function),
            _ => None,
        };
        let names: Vec<Option<&str>> = select.projection.iter().map(lookup_name).collect();
        for (item, name) in select.projection.iter_mut().zip(&names) {
            if let Some(name) = name
                && names.iter().flatten().filter(|n| *n == name).count() == 1
                && let SelectItem::UnnamedExpr(expr) = item
            {
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: datafusion::sql::sqlparser::ast::Ident::new(*name),
                };
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        let Expr::Function(function) = expr else {
            return ControlFlow::Continue(());
        };
        let Some(name) = Self::called(function) else {
            return ControlFlow::Continue(());
        };
        let FunctionArguments::List(list) = &function.args else {
            return ControlFlow::Continue(());
        };
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(argument))] = list.args.as_slice() else {
            return ControlFlow::Continue(());
        };
        if let Some(lookup) = Self::lookup(name, argument)
            && let Some(subquery) = sql_expr(&lookup)
        {
            *expr = subquery;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `'name'::regclass`, which the Postgres-compatible parser turns into a scalar subquery of
/// `pg_class` (NULL, and then an Arrow error, for a name that names nothing) → the `to_regclass`
/// lookup of the name (which also finds `pg_catalog`'s tables unqualified, as Postgres' search
/// path does) given to `regclassin`, which makes an unknown name 42P01 as in Postgres.
struct RegclassCast {
    changed: bool,
}

impl RegclassCast {
    /// The cast's operand, when `query` is the parser's `regclass` lookup.
    fn operand(query: &Query) -> Option<Expr> {
        let SetExpr::Select(select) = query.body.as_ref() else {
            return None;
        };
        let [from] = select.from.as_slice() else {
            return None;
        };
        let TableFactor::Table { name, .. } = &from.relation else {
            return None;
        };
        if name.to_string() != "pg_catalog.pg_class" || from.joins.len() != 2 {
            return None;
        }
        let TableFactor::Derived { subquery, .. } = &from.joins[1].relation else {
            return None;
        };
        let SetExpr::Select(parts) = subquery.body.as_ref() else {
            return None;
        };
        let [SelectItem::ExprWithAlias { expr, alias }] = parts.projection.as_slice() else {
            return None;
        };
        let Expr::Function(function) = expr else {
            return None;
        };
        if alias.value != "parts" || function.name.to_string() != "parse_ident" {
            return None;
        }
        let FunctionArguments::List(list) = &function.args else {
            return None;
        };
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Cast { expr, .. }))] =
            list.args.as_slice()
        else {
            return None;
        };
        Some(expr.as_ref().clone())
    }
}

impl VisitorMut for RegclassCast {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        let Expr::Subquery(query) = expr else {
            return ControlFlow::Continue(());
        };
        let Some(operand) = Self::operand(query) else {
            return ControlFlow::Continue(());
        };
        let Some(lookup) = RegLookup::lookup("to_regclass", &operand) else {
            return ControlFlow::Continue(());
        };
        let call = format!(
            "{}({lookup}, CAST({operand} AS TEXT))",
            crate::catalog::REGCLASS_IN
        );
        if let Some(call) = sql_expr(&call) {
            *expr = call;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `x::json` and `x::jsonb` → `json_in(x)` and `jsonb_in(x)`: the text checked to be JSON (and
/// for `jsonb` normalized), marked as JSON for the functions that take it (`crate::json`).
struct JsonCast {
    changed: bool,
}

impl VisitorMut for JsonCast {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        let Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr: operand,
            data_type: data_type @ (DataType::JSON | DataType::JSONB),
            format: None,
            ..
        } = expr
        else {
            return ControlFlow::Continue(());
        };
        let name = if matches!(data_type, DataType::JSON) {
            "json_in"
        } else {
            "jsonb_in"
        };
        let Some(call) = sql_expr(&format!("{name}({operand})")) else {
            return ControlFlow::Continue(());
        };
        *expr = call;
        self.changed = true;
        ControlFlow::Continue(())
    }
}

/// `information_schema._pg_expandarray(a)`, a set-returning function → `unnest` of the list of
/// its `(x, n)` rows (`catalog::expand_array`); and `(composite).field`, which DataFusion plans
/// only on a column → `get_field(composite, 'field')`. JDBC's `getPrimaryKeys` uses both.
struct ExpandArray {
    changed: bool,
}

impl ExpandArray {
    /// `unnest(...)` for a call of `[information_schema.]_pg_expandarray` (in parentheses or not).
    fn expanded(expr: &Expr) -> Option<String> {
        let function = match expr {
            Expr::Nested(inner) => return Self::expanded(inner),
            Expr::Function(function) => function,
            _ => return None,
        };
        // The Postgres-compatible parser drops the schema.
        let name = match function.name.0.as_slice() {
            [name] => name,
            [schema, name]
                if schema
                    .as_ident()
                    .is_some_and(|s| s.value.eq_ignore_ascii_case("information_schema")) =>
            {
                name
            }
            _ => return None,
        };
        if !name
            .as_ident()
            .is_some_and(|f| f.value.eq_ignore_ascii_case("_pg_expandarray"))
        {
            return None;
        }
        let FunctionArguments::List(list) = &function.args else {
            return None;
        };
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(array))] = list.args.as_slice() else {
            return None;
        };
        Some(format!("unnest({}({array}))", crate::catalog::EXPAND_ARRAY))
    }
}

impl VisitorMut for ExpandArray {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        let text = match &*expr {
            Expr::CompoundFieldAccess { root, access_chain } => {
                let root = match root.as_ref() {
                    Expr::Nested(inner) => inner,
                    other => other,
                };
                let mut text = Self::expanded(root).unwrap_or_else(|| root.to_string());
                for access in access_chain.iter() {
                    let AccessExpr::Dot(Expr::Identifier(field)) = access else {
                        return ControlFlow::Continue(());
                    };
                    let name = match field.quote_style {
                        Some(_) => field.value.clone(),
                        None => field.value.to_ascii_lowercase(),
                    };
                    text = format!("get_field({text}, '{}')", name.replace('\'', "''"));
                }
                text
            }
            other => match Self::expanded(other) {
                Some(text) => text,
                None => return ControlFlow::Continue(()),
            },
        };
        if let Some(call) = sql_expr(&text) {
            *expr = call;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `column = 'name'::regproc`, which the Postgres-compatible parser turns into a lookup of the
/// function's oid in `pg_proc` → `column = 'name'`: the catalog keeps `regproc` columns
/// (`pg_type.typinput`, ...) as function names, as Postgres shows them, so the oid would be
/// compared with a name. A `pg_catalog.` prefix is dropped, as Postgres' output drops it. JDBC's
/// `getTypeInfo` asks `typinput = 'pg_catalog.array_in'::regproc`.
struct RegprocName {
    changed: bool,
}

impl RegprocName {
    /// The function name looked up, when `expr` is the parser's `regproc` lookup.
    fn name(expr: &Expr) -> Option<String> {
        let Expr::Subquery(query) = expr else {
            return None;
        };
        let SetExpr::Select(select) = query.body.as_ref() else {
            return None;
        };
        let [from] = select.from.as_slice() else {
            return None;
        };
        let TableFactor::Table { name, .. } = &from.relation else {
            return None;
        };
        if name.to_string() != "pg_catalog.pg_proc" || !from.joins.is_empty() {
            return None;
        }
        let Some(Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        }) = &select.selection
        else {
            return None;
        };
        let (Expr::Identifier(column), Expr::Value(value)) = (left.as_ref(), right.as_ref()) else {
            return None;
        };
        let Value::SingleQuotedString(name) = &value.value else {
            return None;
        };
        (column.value == "proname")
            .then(|| name.strip_prefix("pg_catalog.").unwrap_or(name).to_string())
    }
}

impl VisitorMut for RegprocName {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq | BinaryOperator::NotEq,
            right,
        } = expr
        else {
            return ControlFlow::Continue(());
        };
        let column = |e: &Expr| matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
        let side = if column(left) {
            right
        } else if column(right) {
            left
        } else {
            return ControlFlow::Continue(());
        };
        if let Some(name) = Self::name(side) {
            **side = Expr::Value(Value::SingleQuotedString(name).with_empty_span());
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `information_schema.columns` → the same rows with `data_type` named as Postgres names it
/// (`bigint`, `text`, `numeric`, `timestamp with time zone`, `ARRAY`) instead of DataFusion's
/// Arrow type names (`Int64`, `Utf8View`, `Decimal128(38, 10)`, `Timestamp(µs, "UTC")`): BI tools
/// pick columns by these names (Grafana's time columns, for one).
struct InformationSchemaColumns {
    changed: bool,
}

/// The columns of DataFusion's `information_schema.columns`, in order.
const INFORMATION_SCHEMA_COLUMNS: [&str; 15] = [
    "table_catalog",
    "table_schema",
    "table_name",
    "column_name",
    "ordinal_position",
    "column_default",
    "is_nullable",
    "data_type",
    "character_maximum_length",
    "character_octet_length",
    "numeric_precision",
    "numeric_precision_radix",
    "numeric_scale",
    "datetime_precision",
    "interval_type",
];

impl VisitorMut for InformationSchemaColumns {
    type Break = ();

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Self::Break> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let qualified = name.to_string().replace('"', "").to_ascii_lowercase();
        if qualified != "information_schema.columns"
            && !qualified.ends_with(".information_schema.columns")
        {
            return ControlFlow::Continue(());
        }
        let projection: Vec<String> = INFORMATION_SCHEMA_COLUMNS
            .iter()
            .map(|column| match *column {
                "data_type" => format!("{}(data_type) AS data_type", crate::catalog::SQL_TYPE_NAME),
                other => other.to_string(),
            })
            .collect();
        let alias = alias
            .as_ref()
            .map_or_else(|| "columns".to_string(), ToString::to_string);
        let sql = format!(
            "SELECT 1 FROM (SELECT {} FROM {name}) {alias}",
            projection.join(", ")
        );
        if let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
            && let Some(Statement::Query(query)) = statements.pop()
            && let SetExpr::Select(select) = *query.body
            && let Some(from) = select.from.into_iter().next()
        {
            *factor = from.relation;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `c.reloptions` and `c.relacl` of `pg_catalog.pg_class`, which the catalog does not have, and
/// `n.nspacl` of `pg_namespace`, which it has as always-NULL text: finops-db tables have no
/// storage parameters and no access lists beyond the defaults (who sees what is decided by
/// roles, see the README), so each is a NULL `text[]` (psql's `\d+` and `\dn+` read them as
/// arrays).
struct RelOptions {
    changed: bool,
}

impl VisitorMut for RelOptions {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        if let Expr::CompoundIdentifier(parts) = expr
            && parts.last().is_some_and(|p| {
                ["reloptions", "relacl", "nspacl"]
                    .iter()
                    .any(|name| p.value.eq_ignore_ascii_case(name))
            })
            && let Some(null) = sql_expr("CAST(NULL AS TEXT[])")
        {
            *expr = null;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// Whether `query` reads only `pg_catalog` relations.
fn reads_catalog(select: &datafusion::sql::sqlparser::ast::Select) -> bool {
    !select.from.is_empty()
        && select.from.iter().all(|t| {
            matches!(&t.relation, TableFactor::Table { name, .. }
                if name.to_string().to_ascii_lowercase().starts_with("pg_catalog."))
        })
}

/// A catalog lookup written as a scalar subquery that returns at most one row by its key but
/// has no aggregate — `(SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid)`,
/// from psql's `\dT` — gets `MAX(...)`, the same value for zero or one row, which DataFusion's
/// decorrelation requires.
struct CatalogScalarSubquery {
    changed: bool,
}

impl VisitorMut for CatalogScalarSubquery {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        if let Expr::Subquery(query) = expr
            && let SetExpr::Select(select) = query.body.as_mut()
            && select.projection.len() == 1
            && matches!(select.group_by, GroupByExpr::Expressions(ref e, _) if e.is_empty())
            && reads_catalog(select)
            && let SelectItem::UnnamedExpr(element) = &select.projection[0]
            && matches!(element, Expr::BinaryOp { .. })
            && let Some(aggregate) = sql_expr(&format!("max({element})"))
        {
            select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `ARRAY(SELECT e FROM ... [ORDER BY o])` → `(SELECT array_agg(e [ORDER BY o]) FROM ...)`,
/// which DataFusion plans as a (possibly correlated) scalar subquery. psql's `\du` sends it.
struct ArraySubquery {
    changed: bool,
}

fn as_array_agg(query: &Query) -> Option<Query> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if select.projection.len() != 1 || query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let element = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    let order = query
        .order_by
        .as_ref()
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    let aggregate = sql_expr(&format!("array_agg({element}{order})"))?;
    let mut query = query.clone();
    query.order_by = None;
    if let SetExpr::Select(select) = query.body.as_mut() {
        select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
    }
    Some(query)
}

/// `ARRAY(SELECT ... FROM unnest(x.reloptions) ...)` → `x.reloptions`'s NULL (see the caller).
fn unnested_reloptions(query: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [table] = select.from.as_slice() else {
        return None;
    };
    let TableFactor::Table {
        name,
        args: Some(args),
        ..
    } = &table.relation
    else {
        return None;
    };
    let unnest = name.to_string().to_ascii_lowercase();
    let argument = args.args.first()?.to_string();
    ((unnest == "unnest" || unnest == "pg_catalog.unnest") && argument.ends_with("reloptions"))
        .then(|| sql_expr("CAST(NULL AS TEXT[])"))
        .flatten()
}

impl VisitorMut for ArraySubquery {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        if let Expr::Function(function) = expr
            && function.name.to_string().eq_ignore_ascii_case("array")
            && let FunctionArguments::Subquery(query) = &function.args
            && let Some(options) = unnested_reloptions(query)
        {
            // psql's `\d+` appends the TOAST table's options; finops-db has no TOAST tables, so
            // the LEFT JOIN that provides them always yields NULL, and so does this.
            *expr = options;
            self.changed = true;
        } else if let Expr::Function(function) = expr
            && function.name.to_string().eq_ignore_ascii_case("array")
            && let FunctionArguments::Subquery(query) = &function.args
            && let Some(aggregated) = as_array_agg(query)
        {
            *expr = Expr::Subquery(Box::new(aggregated));
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// A select list that repeats an unnamed expression (`SELECT NULL, NULL`, `count(*), count(*)`),
/// which Postgres allows and a DataFusion plan cannot hold (its columns need distinct names) →
/// each repeat named after its Postgres label and its place among the repeats (`?column?_2`,
/// `count_2`). JDBC's `getProcedures` selects `NULL, NULL, NULL`.
struct RepeatedColumns {
    changed: bool,
}

impl RepeatedColumns {
    fn name_repeats(&mut self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                let mut taken: std::collections::HashSet<String> = select
                    .projection
                    .iter()
                    .filter_map(|item| match item {
                        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                        _ => None,
                    })
                    .collect();
                let mut seen: std::collections::HashMap<String, usize> =
                    std::collections::HashMap::new();
                for item in select.projection.iter_mut() {
                    let SelectItem::UnnamedExpr(expr) = item else {
                        continue;
                    };
                    let count = seen.entry(expr.to_string()).or_default();
                    *count += 1;
                    if *count == 1 {
                        continue;
                    }
                    let base = super::labels::label(expr);
                    let mut place = *count;
                    let name = loop {
                        let name = format!("{base}_{place}");
                        if taken.insert(name.clone()) {
                            break name;
                        }
                        place += 1;
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: datafusion::sql::sqlparser::ast::Ident::with_quote('"', name),
                    };
                    self.changed = true;
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.name_repeats(left);
                self.name_repeats(right);
            }
            _ => {}
        }
    }
}

impl VisitorMut for RepeatedColumns {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Self::Break> {
        self.name_repeats(&mut query.body);
        ControlFlow::Continue(())
    }
}

/// An unqualified `pg_stat_activity` → `pg_catalog.pg_stat_activity`: Postgres searches
/// `pg_catalog` first, and datafusion-pg-catalog qualifies only the tables it has itself
/// (finops-db adds this one, see `activity`).
struct AddedCatalogTables {
    changed: bool,
}

impl VisitorMut for AddedCatalogTables {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Self::Break> {
        if let TableFactor::Table {
            name, args: None, ..
        } = factor
            && let [ObjectNamePart::Identifier(ident)] = name.0.as_slice()
            && ident.value.eq_ignore_ascii_case("pg_stat_activity")
        {
            name.0
                .insert(0, ObjectNamePart::Identifier(Ident::new("pg_catalog")));
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `x [I]LIKE 'p' ESCAPE 'c'` → the same pattern written with DataFusion's only escape character,
/// the backslash (SQLAlchemy and Metabase send `ESCAPE '/'`).
struct LikeEscape {
    changed: bool,
}

/// Re-escape `pattern` from escape character `escape` to backslash.
fn to_backslash_escapes(pattern: &str, escape: char) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            match chars.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push(c),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

impl VisitorMut for LikeEscape {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        if let Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        } = expr
        {
            let escape = escape_char
                .as_ref()
                .and_then(|v| v.value.clone().into_string())
                .and_then(|s| {
                    let mut chars = s.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if c != '\\' => Some(c),
                        _ => None,
                    }
                });
            if let (Some(escape), Expr::Value(value)) = (escape, pattern.as_mut())
                && let Value::SingleQuotedString(text) = &mut value.value
            {
                *text = to_backslash_escapes(text, escape);
                *escape_char = None;
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }
}

/// `$n` → `CAST($n AS type)` for each `(n, type)` of `declared`: the parameters whose type the
/// client declared where DataFusion's inference from the context could lose their value.
/// Postgres types a parameter as the client declares it; DataFusion infers `$1` in `$1 * 2` as
/// an integer, which would turn a `numeric` 0.5 into 0. `None` when `sql` is not one statement
/// that parses (the planner then reports it as written) or has none of those parameters.
pub fn cast_parameters(sql: &str, declared: &[(usize, DataType)]) -> Option<String> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let [statement] = statements.as_mut_slice() else {
        return None;
    };
    let mut changed = false;
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Value(value) = expr
            && let Value::Placeholder(name) = &value.value
            && let Some((_, data_type)) = declared
                .iter()
                .find(|(n, _)| name.strip_prefix('$') == Some(n.to_string().as_str()))
        {
            *expr = Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(expr.clone()),
                data_type: data_type.clone(),
                array: false,
                format: None,
            };
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then(|| statement.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_parameters_are_cast() {
        use datafusion::sql::sqlparser::ast::ExactNumberInfo;

        let numeric = DataType::Numeric(ExactNumberInfo::None);
        assert_eq!(
            cast_parameters("select $1 * 2, $2, $1", &[(1, numeric.clone())]).as_deref(),
            Some("SELECT CAST($1 AS NUMERIC) * 2, $2, CAST($1 AS NUMERIC)")
        );
        assert_eq!(
            cast_parameters(
                "select sum(input_tokens * $2) from t where a = $1",
                &[(2, DataType::DoublePrecision)]
            )
            .as_deref(),
            Some("SELECT sum(input_tokens * CAST($2 AS DOUBLE PRECISION)) FROM t WHERE a = $1")
        );
        assert_eq!(cast_parameters("select $1", &[(2, numeric.clone())]), None);
        assert_eq!(
            cast_parameters("select from where", &[(1, numeric.clone())]),
            None
        );
        assert_eq!(
            cast_parameters("select $1; select $1", &[(1, numeric)]),
            None
        );
    }

    fn rewritten(sql: &str) -> String {
        let statement = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statement())
            .expect("parses");
        rewrite(&statement)
            .map(|s| s.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn array_subquery_becomes_array_agg() {
        let out =
            rewritten("SELECT ARRAY(SELECT b.x FROM t b WHERE b.id = r.id ORDER BY 1) AS m FROM r");
        assert_eq!(
            out,
            "SELECT (SELECT array_agg(b.x ORDER BY 1) FROM t b WHERE b.id = r.id) AS m FROM r"
        );
    }

    #[test]
    fn order_by_ordinal_of_an_expression_orders_by_the_expression() {
        assert_eq!(
            rewritten("SELECT team, round(sum(cost), 2) FROM u GROUP BY 1 ORDER BY 2 DESC, 1"),
            "SELECT team, round(sum(cost), 2) FROM u GROUP BY 1 ORDER BY round(sum(cost), 2) DESC, 1"
        );
        // Columns, aliases, positions out of range and set operations are left alone.
        assert_eq!(rewritten("SELECT a, b FROM t ORDER BY 2"), "");
        assert_eq!(
            rewritten("SELECT a, sum(b) AS s FROM t GROUP BY a ORDER BY 2"),
            ""
        );
        assert_eq!(
            rewritten("SELECT a, sum(b) FROM t GROUP BY a ORDER BY 3"),
            ""
        );
        assert_eq!(
            rewritten("SELECT a + 1 FROM t UNION ALL SELECT 2 ORDER BY 1"),
            ""
        );
    }

    #[test]
    fn like_escape_is_rewritten_to_backslash() {
        assert_eq!(
            rewritten("SELECT a LIKE 'x/_y%' ESCAPE '/' FROM t"),
            "SELECT a LIKE 'x\\_y%' FROM t"
        );
        assert_eq!(to_backslash_escapes("a\\b//c", '/'), "a\\\\b\\/c");
    }

    #[test]
    fn catalog_lookups_get_an_aggregate_and_reloptions_is_null() {
        assert_eq!(
            rewritten(
                "SELECT t.oid FROM pg_catalog.pg_type t WHERE (SELECT c.relkind = 'c' \
                 FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid)"
            ),
            "SELECT t.oid FROM pg_catalog.pg_type t WHERE (SELECT max(c.relkind = 'c') \
             FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid)"
        );
        assert_eq!(
            rewritten("SELECT c.reloptions FROM pg_catalog.pg_class c"),
            "SELECT CAST(NULL AS TEXT[]) AS \"reloptions\" FROM pg_catalog.pg_class c"
        );
        // A user table's column of that name, or a lookup outside the catalog, is left alone.
        assert_eq!(rewritten("SELECT t.reloptions FROM t"), "");
        assert_eq!(
            rewritten("SELECT (SELECT b.x = 1 FROM b WHERE b.id = a.id) FROM a"),
            ""
        );
    }

    #[test]
    fn set_returning_expandarray_and_composite_fields_plan_as_unnest_and_get_field() {
        assert_eq!(
            rewritten(
                "SELECT (information_schema._pg_expandarray(i.indkey)).n AS k, \
                 information_schema._pg_expandarray(i.indkey) AS keys FROM i"
            ),
            "SELECT get_field(unnest(_pg_expandarray_rows(i.indkey)), 'n') AS k, \
             unnest(_pg_expandarray_rows(i.indkey)) AS keys FROM i"
        );
        assert_eq!(
            rewritten("SELECT 1 FROM r WHERE r.a = (r.keys).\"X\""),
            "SELECT 1 FROM r WHERE r.a = get_field(r.keys, 'X')"
        );
    }

    #[test]
    fn repeated_unnamed_columns_get_distinct_names() {
        assert_eq!(
            rewritten("SELECT NULL AS a, NULL, NULL, count(*), count(*), NULL FROM t"),
            "SELECT NULL AS a, NULL, NULL AS \"?column?_2\", count(*), count(*) AS \"count_2\", \
             NULL AS \"?column?_3\" FROM t"
        );
        assert_eq!(rewritten("SELECT NULL, 1 FROM t"), "");
    }

    #[test]
    fn a_regproc_literal_compared_with_a_column_is_the_function_name() {
        let lookup = "(SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'pg_catalog.array_in')";
        assert_eq!(
            rewritten(&format!("SELECT 1 FROM pg_type WHERE typinput = {lookup}")),
            "SELECT 1 FROM pg_type WHERE typinput = 'array_in'"
        );
        // Elsewhere the lookup keeps its oid.
        assert_eq!(rewritten(&format!("SELECT {lookup}")), "");
    }

    #[test]
    fn other_statements_are_untouched() {
        assert_eq!(rewritten("SELECT ARRAY[1, 2]"), "");
        assert_eq!(rewritten("SELECT array_length(ARRAY[1], 1)"), "");
    }
}
