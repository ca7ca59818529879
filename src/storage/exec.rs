//! The physical plan node of every write to a durable table (INSERT, DELETE, UPDATE, TRUNCATE). It
//! does its work when executed, not when planned, so `EXPLAIN` changes nothing, and it returns the
//! single `count` row DataFusion expects from DML.
//!
//! It owns the glue between DataFusion's execution and `TableCore`'s write path. It must not
//! implement any write semantics itself.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions,
};

use super::table::{TableCore, detached};

/// What a [`StorageWriteExec`] does.
#[derive(Debug, Clone)]
pub(crate) enum WriteOp {
    /// Append the rows of the input plan as one statement.
    Insert(Arc<dyn ExecutionPlan>),
    /// Delete rows matching the predicate (all rows without one).
    Delete(Option<Arc<dyn PhysicalExpr>>),
    /// Set columns (by index) to expressions on rows matching the predicate.
    Update(
        Vec<(usize, Arc<dyn PhysicalExpr>)>,
        Option<Arc<dyn PhysicalExpr>>,
    ),
    /// Remove every row.
    Truncate,
}

/// Runs one write against a durable table and yields `count`.
#[derive(Debug)]
pub(crate) struct StorageWriteExec {
    core: Arc<TableCore>,
    op: WriteOp,
    properties: Arc<PlanProperties>,
}

impl StorageWriteExec {
    pub(crate) fn new_arc(core: Arc<TableCore>, op: WriteOp) -> Arc<dyn ExecutionPlan> {
        let schema = count_schema();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Arc::new(Self {
            core,
            op,
            properties: Arc::new(properties),
        })
    }
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl DisplayAs for StorageWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let op = match &self.op {
            WriteOp::Insert(_) => "insert",
            WriteOp::Delete(_) => "delete",
            WriteOp::Update(..) => "update",
            WriteOp::Truncate => "truncate",
        };
        write!(f, "StorageWriteExec: {op} {}", self.core.qualified_name())
    }
}

impl ExecutionPlan for StorageWriteExec {
    fn name(&self) -> &str {
        "StorageWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        match &self.op {
            WriteOp::Insert(input) => vec![input],
            _ => vec![],
        }
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let op = match (&self.op, children.len()) {
            (WriteOp::Insert(_), 1) => WriteOp::Insert(
                children
                    .into_iter()
                    .next()
                    .ok_or_else(|| DataFusionError::Internal("insert needs one input".into()))?,
            ),
            (WriteOp::Insert(_), n) => {
                return Err(DataFusionError::Internal(format!(
                    "insert needs one input, got {n}"
                )));
            }
            (op, 0) => op.clone(),
            (_, n) => {
                return Err(DataFusionError::Internal(format!(
                    "this write has no inputs, got {n}"
                )));
            }
        };
        Ok(Self::new_arc(Arc::clone(&self.core), op))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        let mut exprs: Vec<&Arc<dyn PhysicalExpr>> = Vec::new();
        match &self.op {
            WriteOp::Delete(Some(p)) => exprs.push(p),
            WriteOp::Update(assignments, predicate) => {
                exprs.extend(assignments.iter().map(|(_, e)| e));
                exprs.extend(predicate.iter());
            }
            _ => {}
        }
        for expr in exprs {
            if f(expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "StorageWriteExec has one partition, asked for {partition}"
            )));
        }
        let core = Arc::clone(&self.core);
        let op = self.op.clone();
        let schema = count_schema();
        let out_schema = Arc::clone(&schema);
        let work = async move {
            let count = match op {
                WriteOp::Insert(input) => {
                    // The whole statement is gathered first so it is logged as one record:
                    // all its rows or none.
                    let batches = datafusion::physical_plan::collect(input, context).await?;
                    detached(async move { core.append(batches).await }).await?
                }
                WriteOp::Delete(predicate) => {
                    detached(async move { core.delete(predicate).await }).await?
                }
                WriteOp::Update(assignments, predicate) => {
                    detached(async move { core.update(assignments, predicate).await }).await?
                }
                WriteOp::Truncate => detached(async move { core.truncate().await }).await?,
            };
            let column: ArrayRef = Arc::new(UInt64Array::from(vec![count]));
            Ok(RecordBatch::try_new(out_schema, vec![column])?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(work),
        )))
    }
}
