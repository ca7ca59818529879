//! Tables whose rows are computed when a query runs, not when it is planned
//! (`finops.cap_status`, over the cap state ingest and `finops.reserve` keep current). A
//! physical plan that reads only such tables reads current rows each time it runs, so the server
//! may keep it for the next execution of a prepared statement ([`reusable`]) instead of planning
//! the same point query again for every gateway call.
//!
//! It owns the plan node and the rule for which plans may run again. What the rows are belongs
//! to each table.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, ReplaceChildrenOptions,
};

/// The rows of a live table.
pub trait LiveRows: fmt::Debug + Send + Sync {
    /// The table's name, for `EXPLAIN`.
    fn name(&self) -> &str;

    /// The table's rows as of now, in its schema.
    fn rows(&self) -> DfResult<RecordBatch>;
}

/// Scans a live table: asks it for its rows when executed, each time it is executed.
#[derive(Debug)]
pub struct LiveExec {
    table: Arc<dyn LiveRows>,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl LiveExec {
    /// The scan of `table` (whose rows have `schema`), with its columns at `projection`.
    pub fn new_arc(
        table: Arc<dyn LiveRows>,
        schema: &SchemaRef,
        projection: Option<&Vec<usize>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projected = match projection {
            Some(indices) => Arc::new(schema.project(indices)?),
            None => Arc::clone(schema),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(projected),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(Self {
            table,
            projection: projection.cloned(),
            properties: Arc::new(properties),
        }))
    }
}

impl DisplayAs for LiveExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "LiveExec: {}", self.table.name())?;
        if let Some(projection) = &self.projection {
            write!(f, ", projection={projection:?}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for LiveExec {
    fn name(&self) -> &str {
        "LiveExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(format!(
                "LiveExec has no inputs, got {}",
                children.len()
            )))
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(datafusion::physical_plan::ChildrenPropertiesMode::Keep),
        )
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "LiveExec has one partition, asked for {partition}"
            )));
        }
        let table = Arc::clone(&self.table);
        let projection = self.projection.clone();
        let rows = async move {
            let batch = table.rows()?;
            match projection {
                Some(indices) => Ok(batch.project(&indices)?),
                None => Ok(batch),
            }
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            futures::stream::once(rows),
        )))
    }
}

/// `plan` (a [`reusable`] one) without its round-robin repartitions of a single partition: a
/// live table yields a few rows, and spreading them over the cores costs more than it saves
/// (tasks and channels set up at every run). The optimizer adds them because a live table has
/// no row count it could trust.
pub fn without_round_robin(plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        if let Some(repartition) = node.downcast_ref::<RepartitionExec>()
            && matches!(repartition.partitioning(), Partitioning::RoundRobinBatch(_))
            && !repartition.preserve_order()
            && repartition.input().output_partitioning().partition_count() == 1
        {
            return Ok(Transformed::yes(Arc::clone(repartition.input())));
        }
        Ok(Transformed::no(node))
    })
    .data()
}

/// Whether `plan` may be kept and run again, after
/// [`reset_plan_states`](datafusion::physical_plan::execution_plan::reset_plan_states), and
/// still answer with current rows: every table it reads is live and every other node holds no
/// state between runs that resetting does not clear (no sort, aggregate or join, whose dynamic
/// filters a reset does not cover).
pub fn reusable(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let node: &dyn ExecutionPlan = plan.as_ref();
    let leaf = node.is::<LiveExec>() || node.is::<PlaceholderRowExec>() || node.is::<EmptyExec>();
    let stateless = node.is::<ProjectionExec>()
        || node.is::<FilterExec>()
        || node.is::<RepartitionExec>()
        || node.is::<CoalescePartitionsExec>()
        || node.is::<CooperativeExec>()
        || node.is::<GlobalLimitExec>()
        || node.is::<LocalLimitExec>();
    let children = plan.children();
    if children.is_empty() {
        return leaf;
    }
    stateless && children.into_iter().all(reusable)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
    use datafusion::physical_plan::collect;
    use datafusion::physical_plan::execution_plan::reset_plan_states;
    use datafusion::physical_plan::sorts::sort::SortExec;

    use super::*;

    /// A live table of one row, whose value counts the times it was read.
    #[derive(Debug, Default)]
    struct Reads(AtomicI64);

    impl LiveRows for Reads {
        fn name(&self) -> &str {
            "reads"
        }

        fn rows(&self) -> DfResult<RecordBatch> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(RecordBatch::try_new(
                schema(),
                vec![Arc::new(Int64Array::from(vec![n]))],
            )?)
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
    }

    fn positive(input: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        let predicate = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("n", 0)),
            Operator::Gt,
            Arc::new(Literal::new(ScalarValue::Int64(Some(0)))),
        ));
        Arc::new(FilterExec::try_new(predicate, input).expect("filter"))
    }

    #[tokio::test]
    async fn a_kept_plan_reads_the_rows_of_the_moment_each_time_it_runs() {
        let live = LiveExec::new_arc(Arc::new(Reads::default()), &schema(), None).expect("scan");
        let plan = positive(live);
        assert!(reusable(&plan));
        let ctx = Arc::new(TaskContext::default());
        for expected in 1..=3 {
            let run = reset_plan_states(Arc::clone(&plan)).expect("reset");
            let batches = collect(run, Arc::clone(&ctx)).await.expect("run");
            assert_eq!(
                batches[0].column(0).as_primitive::<Int64Type>().value(0),
                expected
            );
        }
    }

    #[tokio::test]
    async fn a_kept_plan_reads_its_one_partition_without_spreading_it() {
        let live = LiveExec::new_arc(Arc::new(Reads::default()), &schema(), None).expect("scan");
        let spread = Arc::new(
            RepartitionExec::try_new(live, Partitioning::RoundRobinBatch(2)).expect("spread"),
        );
        let plan: Arc<dyn ExecutionPlan> = Arc::new(CoalescePartitionsExec::new(positive(spread)));
        assert!(reusable(&plan));
        let kept = without_round_robin(plan).expect("rewrite");
        let mut repartitions = 0;
        kept.apply(|node| {
            repartitions += usize::from(node.is::<RepartitionExec>());
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("walk");
        assert_eq!(repartitions, 0);
        assert_eq!(
            kept.children()[0].output_partitioning().partition_count(),
            1
        );
        let batches = collect(kept, Arc::new(TaskContext::default()))
            .await
            .expect("run");
        assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 1);
    }

    /// With one target partition (one CPU) nothing is repartitioned, and the optimizer wraps the
    /// scan in a `CooperativeExec` instead, which keeps no state either.
    #[tokio::test]
    async fn a_kept_plan_on_one_partition_keeps_its_cooperative_scan() {
        let live = LiveExec::new_arc(Arc::new(Reads::default()), &schema(), None).expect("scan");
        let plan = positive(Arc::new(CooperativeExec::new(live)));
        assert!(reusable(&plan));
        let ctx = Arc::new(TaskContext::default());
        for expected in 1..=2 {
            let run = reset_plan_states(Arc::clone(&plan)).expect("reset");
            let batches = collect(run, Arc::clone(&ctx)).await.expect("run");
            assert_eq!(
                batches[0].column(0).as_primitive::<Int64Type>().value(0),
                expected
            );
        }
    }

    #[test]
    fn plans_over_stored_rows_or_with_state_between_runs_are_not_kept() {
        let live = LiveExec::new_arc(Arc::new(Reads::default()), &schema(), None).expect("scan");
        let stored = MemorySourceConfig::try_new_exec(&[vec![]], schema(), None).expect("memory");
        assert!(!reusable(&positive(stored)));
        let ordering = datafusion::physical_expr::LexOrdering::new(vec![
            datafusion::physical_expr::PhysicalSortExpr::new_default(Arc::new(Column::new("n", 0))),
        ])
        .expect("ordering");
        let sorted: Arc<dyn ExecutionPlan> =
            Arc::new(SortExec::new(ordering, live).with_fetch(Some(1)));
        assert!(!reusable(&sorted));
        assert!(reusable(&positive(Arc::new(EmptyExec::new(schema())))));
    }
}
