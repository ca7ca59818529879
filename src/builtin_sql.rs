//! The built-in SQL objects (`kpi.*` and the `finops.*` views), compiled in from `sql/`.
//!
//! Owns the one ordered list of built-in definitions. It must not execute them: the engine
//! creates each object at first start, in this order (later objects read earlier ones), and
//! refuses to start if one fails. Each file is one `CREATE [MATERIALIZED] VIEW` statement over
//! `finops.usage` and the FinOps UDFs, plain SQL that also runs unchanged through psql.

/// `finops.usage`, the view every other object reads: created before them, at every start.
pub const USAGE_VIEW: (&str, &str) = ("finops.usage", include_str!("../sql/finops/usage.sql"));

/// Every built-in object as (`schema.object`, its SQL), in creation order: `kpi.daily` first,
/// because the trend, summary and anomaly views read it.
pub const BUILTIN_SQL: &[(&str, &str)] = &[
    ("kpi.daily", include_str!("../sql/kpi/daily.sql")),
    ("kpi.weekly", include_str!("../sql/kpi/weekly.sql")),
    ("kpi.monthly", include_str!("../sql/kpi/monthly.sql")),
    ("kpi.summary", include_str!("../sql/kpi/summary.sql")),
    ("kpi.redundancy", include_str!("../sql/kpi/redundancy.sql")),
    ("kpi.model_fit", include_str!("../sql/kpi/model_fit.sql")),
    (
        "kpi.prompt_efficiency",
        include_str!("../sql/kpi/prompt_efficiency.sql"),
    ),
    (
        "kpi.provider_compare",
        include_str!("../sql/kpi/provider_compare.sql"),
    ),
    ("kpi.anomalies", include_str!("../sql/kpi/anomalies.sql")),
    (
        "finops.unpriced_usage",
        include_str!("../sql/finops/unpriced_usage.sql"),
    ),
    (
        "finops.unowned_spend",
        include_str!("../sql/finops/unowned_spend.sql"),
    ),
    (
        "kpi.reconciliation",
        include_str!("../sql/kpi/reconciliation.sql"),
    ),
    (
        "finops.focus_export",
        include_str!("../sql/finops/focus_export.sql"),
    ),
];

/// The SQL of built-in object `name` (`schema.object`), if there is one.
pub fn builtin_sql(name: &str) -> Option<&'static str> {
    BUILTIN_SQL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, sql)| *sql)
}

#[cfg(test)]
mod engine_tests;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn files_under(dir: &Path, schema: Option<&str>, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read sql dir") {
            let path = entry.expect("dir entry").path();
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 name")
                .to_string();
            if path.is_dir() {
                files_under(&path, Some(&name), out);
            } else if path.extension().and_then(|e| e.to_str()) == Some("sql") {
                let schema = schema.expect("sql files live in sql/<schema>/");
                out.insert(format!("{schema}.{name}"));
            }
        }
    }

    #[test]
    fn every_sql_file_is_in_the_builtin_list() {
        let mut on_disk = BTreeSet::new();
        files_under(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("sql"),
            None,
            &mut on_disk,
        );
        let mut listed: BTreeSet<String> = BUILTIN_SQL.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(listed.len(), BUILTIN_SQL.len(), "a name is listed twice");
        listed.insert(USAGE_VIEW.0.to_string());
        let missing: Vec<_> = on_disk.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "sql/ files not in BUILTIN_SQL: {missing:?}"
        );
        let stale: Vec<_> = listed.difference(&on_disk).collect();
        assert!(
            stale.is_empty(),
            "BUILTIN_SQL names with no file: {stale:?}"
        );
    }

    #[test]
    fn each_file_creates_the_object_it_is_named_after() {
        for (name, sql) in BUILTIN_SQL {
            let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
            assert_eq!(statements.len(), 1, "{name}: one statement per file");
            let Statement::CreateView(view) = &statements[0] else {
                panic!("{name}: not a CREATE VIEW");
            };
            assert_eq!(view.name.to_string(), *name);
            assert_eq!(view.materialized, *name == "kpi.daily", "{name}");
        }
    }

    #[test]
    fn objects_only_read_objects_created_before_them() {
        for (i, (name, sql)) in BUILTIN_SQL.iter().enumerate() {
            for (later, _) in &BUILTIN_SQL[i + 1..] {
                let reads_later = sql.contains(&format!("FROM {later}"))
                    || sql.contains(&format!("JOIN {later}"));
                assert!(!reads_later, "{name} reads {later}, created after it");
            }
        }
        assert!(builtin_sql("kpi.daily").is_some());
        assert!(builtin_sql("kpi.nope").is_none());
    }
}
