//! Catalog columns that are `int2[]` in Postgres but text in the catalog crate
//! (`pg_constraint.conkey`, `confkey`), as arrays of `smallint`, so that `conkey[n]` and
//! `array_length(conkey, 1)` work as in Postgres (JDBC's `getImportedKeys` joins on
//! `con.confkey[pos.n]`).
//!
//! It owns only these columns' type; every other column passes through.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, Int16Builder, ListBuilder, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// `inner` with `columns` as `smallint` arrays.
#[derive(Debug)]
pub struct Int2Arrays {
    inner: Arc<dyn TableProvider>,
    columns: &'static [&'static str],
    schema: SchemaRef,
}

impl Int2Arrays {
    pub fn new(inner: Arc<dyn TableProvider>, columns: &'static [&'static str]) -> Self {
        let fields: Vec<Field> = inner
            .schema()
            .fields()
            .iter()
            .map(|f| {
                if columns.contains(&f.name().as_str()) && is_text(f.data_type()) {
                    Field::new(f.name(), DataType::new_list(DataType::Int16, true), true)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        Int2Arrays {
            inner,
            columns,
            schema,
        }
    }

    fn convert(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut columns = batch.columns().to_vec();
        for (i, field) in batch.schema().fields().iter().enumerate() {
            if self.columns.contains(&field.name().as_str()) && is_text(field.data_type()) {
                columns[i] = parse_arrays(&columns[i])?;
            }
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// `{1,2}`, `[1, 2]` or `1 2` → `[1, 2]`; NULL and empty text → NULL.
fn parse_arrays(array: &ArrayRef) -> Result<ArrayRef> {
    let text = cast(array, &DataType::Utf8)?;
    let mut out = ListBuilder::new(Int16Builder::new());
    for value in text.as_string::<i32>() {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            out.append_null();
            continue;
        };
        for part in value
            .trim_matches(|c| matches!(c, '{' | '}' | '[' | ']'))
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|p| !p.is_empty())
        {
            let number = part.parse::<i16>().map_err(|_| {
                DataFusionError::Execution(format!(
                    "pg_catalog: \"{value}\" is not an array of smallint"
                ))
            })?;
            out.values().append_value(number);
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

#[async_trait]
impl TableProvider for Int2Arrays {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = super::scan_all(&self.inner, state)
            .await?
            .into_iter()
            .map(|b| self.convert(b))
            .collect::<Result<Vec<_>>>()?;
        super::scan_rows(self.schema(), batches, state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, StringArray};
    use datafusion::arrow::datatypes::Int16Type;

    #[test]
    fn every_spelling_of_an_int2_array_parses() {
        let input: ArrayRef = Arc::new(StringArray::from(vec![
            Some("{1,2}"),
            Some("[8, 9, 2]"),
            Some("3 4"),
            None,
            Some(""),
        ]));
        let lists = parse_arrays(&input).expect("parses");
        let lists = lists.as_list::<i32>();
        let row =
            |i: usize| -> Vec<i16> { lists.value(i).as_primitive::<Int16Type>().values().to_vec() };
        assert_eq!(row(0), [1, 2]);
        assert_eq!(row(1), [8, 9, 2]);
        assert_eq!(row(2), [3, 4]);
        assert!(lists.is_null(3) && lists.is_null(4));
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["{a}"]));
        assert!(parse_arrays(&bad).is_err());
    }
}
