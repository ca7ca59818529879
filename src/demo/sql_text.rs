//! Renders demo config batches as SQL `INSERT` statements that run unchanged in psql and in
//! finops-db, for `finops-db demo --out` and for anyone seeding a server by hand.
//!
//! Owns literal quoting for the few Arrow types the config rows use. It must not execute SQL.

use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};

use crate::error::{Error, Result};

/// `INSERT INTO <table> (<columns>) VALUES (...), ...;` for every row of `batch`, or an empty
/// string for an empty batch.
pub fn insert_sql(table: &str, batch: &RecordBatch) -> Result<String> {
    if batch.num_rows() == 0 {
        return Ok(String::new());
    }
    let schema = batch.schema();
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect();
    let mut out = format!("INSERT INTO {table} ({}) VALUES\n", names.join(", "));
    for row in 0..batch.num_rows() {
        let values = batch
            .columns()
            .iter()
            .map(|c| literal(c.as_ref(), row))
            .collect::<Result<Vec<_>>>()?;
        out.push_str("  (");
        out.push_str(&values.join(", "));
        out.push_str(if row + 1 == batch.num_rows() {
            ");\n"
        } else {
            "),\n"
        });
    }
    Ok(out)
}

/// Identifiers that are SQL keywords (`match`) must be quoted to be column names.
fn quote_ident(name: &str) -> String {
    const RESERVED: [&str; 4] = ["match", "owner", "period", "value"];
    if RESERVED.contains(&name) {
        format!("\"{name}\"")
    } else {
        name.to_string()
    }
}

fn literal(array: &dyn Array, row: usize) -> Result<String> {
    if array.is_null(row) {
        return Ok("NULL".into());
    }
    let unsupported = || Error::Internal(format!("demo SQL text: type {}", array.data_type()));
    Ok(match array.data_type() {
        DataType::Utf8 => {
            let s = array
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(unsupported)?;
            format!("'{}'", s.value(row).replace('\'', "''"))
        }
        DataType::Int64 => array
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(unsupported)?
            .value(row)
            .to_string(),
        DataType::Boolean => array
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(unsupported)?
            .value(row)
            .to_string(),
        DataType::Decimal128(_, _) => array
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .ok_or_else(unsupported)?
            .value_as_string(row),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            let t = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(unsupported)?;
            // An explicit offset reads the same in Postgres and in Arrow's timestamp parser.
            format!("'{}'", t.format("%Y-%m-%d %H:%M:%S+00:00"))
        }
        _ => return Err(unsupported()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_render_as_one_insert_with_quoted_keywords() {
        let sql = insert_sql("finops.owners", &super::super::config::owners()).expect("sql");
        assert!(sql.starts_with("INSERT INTO finops.owners (scope, scope_value, \"owner\""));
        assert!(sql.contains("('team', 'search', 'maria.garcia@acme.example', 'CC-1001')"));
        assert!(sql.trim_end().ends_with(");"));
    }
}
