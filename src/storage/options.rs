//! Table options as kept in the catalog: the kind of a table (usage or config), extra NOT NULL
//! columns, and column defaults.
//!
//! It owns what these options mean and their stored form. It must not apply them to rows (that is
//! the write path in `table.rs`).

use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};

/// What a table is for, which decides its write semantics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableKind {
    /// Append-only usage data, idempotent by `event_id`: a row whose `event_id` is already stored
    /// (or earlier in the same statement) is skipped. Segments are sorted by `ts`. NULL in a column
    /// with a default takes the default.
    Usage,
    /// A small, editable table (prices, budgets, owners): plain inserts, UPDATE and DELETE.
    #[default]
    Config,
}

/// A column default, kept in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnDefault {
    /// A `bigint` value.
    Int64(i64),
    /// A `double precision` value.
    Float64(f64),
    /// A `boolean` value.
    Boolean(bool),
    /// A `text` value.
    Text(String),
}

impl ColumnDefault {
    /// The default as a scalar.
    pub fn scalar(&self) -> ScalarValue {
        match self {
            ColumnDefault::Int64(v) => ScalarValue::Int64(Some(*v)),
            ColumnDefault::Float64(v) => ScalarValue::Float64(Some(*v)),
            ColumnDefault::Boolean(v) => ScalarValue::Boolean(Some(*v)),
            ColumnDefault::Text(v) => ScalarValue::Utf8(Some(v.clone())),
        }
    }
}

/// How a table behaves: kind, constraints beyond the schema's nullability, and defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableOptions {
    /// Usage (idempotent append) or config (editable).
    pub kind: TableKind,
    /// Columns that reject NULL, in addition to the schema's non-nullable fields.
    pub not_null: Vec<String>,
    /// Column defaults, used for columns an INSERT leaves out (and, in usage tables, for NULLs).
    pub defaults: Vec<(String, ColumnDefault)>,
}

impl TableOptions {
    /// Options of `finops.usage_events` (SPEC 3.1): usage kind, `requests` defaults to 1.
    pub fn usage() -> Self {
        Self {
            kind: TableKind::Usage,
            not_null: Vec::new(),
            defaults: vec![("requests".into(), ColumnDefault::Int64(1))],
        }
    }

    /// Options of an editable config table with no extra constraints.
    pub fn config() -> Self {
        Self::default()
    }
}
