//! The native view of a provider format: its own fields as typed Arrow columns, declared once per
//! format as a list of [`Col`]s and filled from parsed records.
//!
//! Owns the column declaration and the batch builder; it must not interpret token semantics.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Decimal128Builder, Float64Builder, Int64Builder, RecordBatch,
    RecordBatchOptions, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde_json::Value;

use super::value::{self, ValueResult};
use crate::error::{Error, Result};
use crate::schema::{MONEY_PRECISION, MONEY_SCALE, money_type, timestamp_type};

/// How a native field is typed and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text; objects and arrays are kept as JSON text.
    Text,
    /// 64-bit integer (token counts, request counts).
    Int,
    /// Float (non-money quantities such as usage amounts in pricing units).
    Float,
    /// Exact money, `Decimal128(38,12)`.
    Money,
    /// Exact money given in cents (Anthropic cost report), shown in dollars.
    MoneyCents,
    /// Boolean.
    Bool,
    /// Timestamp given as text or Unix seconds.
    Time,
    /// Timestamp given as Unix nanoseconds (OTLP).
    TimeNanos,
}

/// One native column: its SQL name (snake_case), where it is in a record, and its type.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    /// Column name as SQL shows it.
    pub name: &'static str,
    /// Path inside the record, `/`-separated; CSV headers are lower-cased.
    pub path: &'static str,
    /// Type and reader.
    pub kind: Kind,
}

/// Declare a native column.
pub const fn col(name: &'static str, path: &'static str, kind: Kind) -> Col {
    Col { name, path, kind }
}

/// Declare a native column whose SQL name is its (CSV) field name.
pub const fn field(name: &'static str, kind: Kind) -> Col {
    Col {
        name,
        path: name,
        kind,
    }
}

/// Name of the column holding the file each row was read from.
pub const FILE_COLUMN: &str = "_file";
/// Name of the column holding the line (JSONL, CSV) each row was read from.
pub const LINE_COLUMN: &str = "_line";

/// The Arrow schema of a format's native view: its columns, then `_file` and `_line`.
pub fn native_schema(cols: &[Col]) -> SchemaRef {
    let mut fields: Vec<Field> = cols
        .iter()
        .map(|c| Field::new(c.name, data_type(c.kind), true))
        .collect();
    fields.push(Field::new(FILE_COLUMN, DataType::Utf8, false));
    fields.push(Field::new(LINE_COLUMN, DataType::Int64, true));
    Arc::new(Schema::new(fields))
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Text => DataType::Utf8,
        Kind::Int => DataType::Int64,
        Kind::Float => DataType::Float64,
        Kind::Money | Kind::MoneyCents => money_type(),
        Kind::Bool => DataType::Boolean,
        Kind::Time | Kind::TimeNanos => timestamp_type(),
    }
}

/// One typed cell, read before any builder is touched so that a bad record leaves no half row.
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Money(Option<i128>),
    Bool(Option<bool>),
    Time(Option<i64>),
}

fn read(record: &Value, c: &Col) -> ValueResult<Cell> {
    Ok(match c.kind {
        Kind::Text => Cell::Text(value::text(record, c.path)),
        Kind::Int => Cell::Int(value::int(record, c.path)?),
        Kind::Float => Cell::Float(value::float(record, c.path)?),
        Kind::Money => Cell::Money(value::money(record, c.path, 0)?),
        Kind::MoneyCents => Cell::Money(value::money(record, c.path, -2)?),
        Kind::Bool => Cell::Bool(value::boolean(record, c.path)?),
        Kind::Time => Cell::Time(value::time(record, c.path)?),
        Kind::TimeNanos => Cell::Time(value::time_nanos(record, c.path)?),
    })
}

enum Builder {
    Text(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Money(Decimal128Builder),
    Bool(BooleanBuilder),
    Time(TimestampMicrosecondBuilder),
}

/// Accumulates native rows of one file.
pub struct NativeBuilder {
    schema: SchemaRef,
    cols: &'static [Col],
    builders: Vec<Builder>,
    line: Int64Builder,
}

impl NativeBuilder {
    /// A builder for `cols`.
    pub fn new(cols: &'static [Col]) -> Self {
        let builders = cols
            .iter()
            .map(|c| match c.kind {
                Kind::Text => Builder::Text(StringBuilder::new()),
                Kind::Int => Builder::Int(Int64Builder::new()),
                Kind::Float => Builder::Float(Float64Builder::new()),
                Kind::Money | Kind::MoneyCents => Builder::Money(Decimal128Builder::new()),
                Kind::Bool => Builder::Bool(BooleanBuilder::new()),
                Kind::Time | Kind::TimeNanos => Builder::Time(TimestampMicrosecondBuilder::new()),
            })
            .collect();
        Self {
            schema: native_schema(cols),
            cols,
            builders,
            line: Int64Builder::new(),
        }
    }

    /// Type-check every column of `record` without appending it.
    pub fn check(&self, record: &Value) -> ValueResult<()> {
        self.cols
            .iter()
            .try_for_each(|c| read(record, c).map(|_| ()))
    }

    /// Type-check every column of `record`, then append it; on error nothing is appended.
    pub fn push(&mut self, record: &Value, line: Option<u64>) -> ValueResult<()> {
        let cells = self
            .cols
            .iter()
            .map(|c| read(record, c))
            .collect::<ValueResult<Vec<Cell>>>()?;
        for (builder, cell) in self.builders.iter_mut().zip(cells) {
            match (builder, cell) {
                (Builder::Text(b), Cell::Text(v)) => b.append_option(v),
                (Builder::Int(b), Cell::Int(v)) => b.append_option(v),
                (Builder::Float(b), Cell::Float(v)) => b.append_option(v),
                (Builder::Money(b), Cell::Money(v)) => b.append_option(v),
                (Builder::Bool(b), Cell::Bool(v)) => b.append_option(v),
                (Builder::Time(b), Cell::Time(v)) => b.append_option(v),
                _ => unreachable!("builders and cells are made from the same Kind"),
            }
        }
        self.line
            .append_option(line.and_then(|l| i64::try_from(l).ok()));
        Ok(())
    }

    /// The native batch of everything pushed, without the `_file` column (the same for every
    /// row of a file: [`with_file`] adds it when a scan asks for it). The arrays are shrunk to
    /// their length, since parsed files stay in the cache.
    pub fn finish(mut self) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.builders.len() + 2);
        for b in &mut self.builders {
            arrays.push(match b {
                Builder::Text(b) => Arc::new(b.finish()),
                Builder::Int(b) => Arc::new(b.finish()),
                Builder::Float(b) => Arc::new(b.finish()),
                Builder::Money(b) => Arc::new(
                    b.finish()
                        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                ),
                Builder::Bool(b) => Arc::new(b.finish()),
                Builder::Time(b) => Arc::new(b.finish().with_timezone("UTC")),
            });
        }
        arrays.push(Arc::new(self.line.finish()));
        for array in &mut arrays {
            array.shrink_to_fit();
        }
        let stored = Arc::new(without_file(&self.schema));
        RecordBatch::try_new(stored, arrays).map_err(|e| Error::Internal(e.to_string()))
    }
}

/// `schema` (a native schema) without its `_file` column.
fn without_file(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != FILE_COLUMN)
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// The columns `projection` of the native `schema` from `stored` (a batch [`NativeBuilder`]
/// made, without `_file`), with `_file` filled in as `file` where projected.
pub fn with_file(
    stored: &RecordBatch,
    schema: &SchemaRef,
    projection: &[usize],
    file: &str,
) -> Result<RecordBatch> {
    let file_at = schema
        .index_of(FILE_COLUMN)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let columns: Vec<ArrayRef> = projection
        .iter()
        .map(|&i| match i.cmp(&file_at) {
            std::cmp::Ordering::Less => Arc::clone(stored.column(i)),
            std::cmp::Ordering::Equal => Arc::new(StringArray::from_iter_values(
                std::iter::repeat_n(file, stored.num_rows()),
            )) as ArrayRef,
            std::cmp::Ordering::Greater => Arc::clone(stored.column(i - 1)),
        })
        .collect();
    let projected = Arc::new(
        schema
            .project(projection)
            .map_err(|e| Error::Internal(e.to_string()))?,
    );
    RecordBatch::try_new_with_options(
        projected,
        columns,
        &RecordBatchOptions::new().with_row_count(Some(stored.num_rows())),
    )
    .map_err(|e| Error::Internal(e.to_string()))
}
