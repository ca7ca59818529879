//! The runtime that query plans run on, apart from the one that serves connections.
//!
//! A running plan is CPU work that yields to its runtime only now and then. On the runtime that
//! accepts connections, reads sockets, fires timers and handles signals, a couple of heavy queries
//! would hold every worker: no one could connect, a cancel request or `statement_timeout` would be
//! read only when the query let go, and SIGTERM would wait for it. Here each plan runs as a task on
//! its own runtime and hands its batches back through a small channel; the reader stays on the
//! serving runtime, where waiting for the next batch is an ordinary await beside the cancel signal
//! and the deadline. Dropping the reader's stream aborts the task, and with it the plan's own tasks,
//! at the plan's next yield.
//!
//! A task can only be aborted when it yields, and DataFusion makes plans yield at their leaves
//! (each scan spends tokio's cooperative budget per batch). An operator that makes many batches
//! out of one input batch, a join or an unnest, would never reach its leaves again while a parent
//! consumes its output (`count(*)` of a large cross join): [`YieldAfterJoins`] puts the same
//! budget above each of them.
//!
//! It owns where plans run and that they yield; it does not plan otherwise.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Batches a plan may have ready ahead of its reader.
const IN_FLIGHT: usize = 2;

/// A multi-threaded runtime for running plans.
pub struct Executor {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

impl Executor {
    /// A runtime of `threads` workers (at least one).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("finops-exec")
            .enable_all()
            .build()?;
        Ok(Executor {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime is only taken when dropped")
            .handle()
    }

    /// Run all partitions of `plan` on this runtime; its batches arrive in the returned stream,
    /// which may be read from any runtime. A plan that ends early for any reason other than its
    /// own end or error (a panic, the runtime shutting down) ends the stream with an error,
    /// never silently.
    pub fn execute(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        ctx: Arc<TaskContext>,
    ) -> SendableRecordBatchStream {
        let schema = plan.schema();
        let (sender, receiver) = mpsc::channel(IN_FLIGHT);
        let finished = Arc::new(AtomicBool::new(false));
        let task = self
            .handle()
            .spawn(drive(plan, ctx, sender, Arc::clone(&finished)));
        let reader = Reader {
            receiver,
            task,
            finished,
        };
        let batches = futures::stream::unfold(Some(reader), |reader| async move {
            let mut reader = reader?;
            match reader.receiver.recv().await {
                Some(batch) => Some((batch, Some(reader))),
                None if reader.finished.load(Ordering::Acquire) => None,
                None => Some((
                    Err(DataFusionError::Execution(
                        "the query stopped before its end (the server is shutting down)".into(),
                    )),
                    None,
                )),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Without waiting: a plan in the middle of a long computation must not hold up the
        // process's shutdown, and this may be dropped inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The reading end of a running plan; dropping it stops the plan.
struct Reader {
    receiver: mpsc::Receiver<Result<RecordBatch>>,
    task: JoinHandle<()>,
    finished: Arc<AtomicBool>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Run `plan` and send its batches until it ends, fails, or no one reads any more.
async fn drive(
    plan: Arc<dyn ExecutionPlan>,
    ctx: Arc<TaskContext>,
    sender: mpsc::Sender<Result<RecordBatch>>,
    finished: Arc<AtomicBool>,
) {
    let mut batches = match execute_stream(plan, ctx) {
        Ok(batches) => batches,
        Err(e) => {
            finished.store(true, Ordering::Release);
            let _ = sender.send(Err(e)).await;
            return;
        }
    };
    loop {
        let next = tokio::select! {
            biased;
            _ = sender.closed() => return,
            next = AssertUnwindSafe(batches.next()).catch_unwind() => next,
        };
        let batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                finished.store(true, Ordering::Release);
                return;
            }
            Err(panic) => Err(DataFusionError::Execution(format!(
                "the query failed: {}",
                panic_message(panic.as_ref())
            ))),
        };
        let failed = batch.is_err();
        if failed {
            finished.store(true, Ordering::Release);
        }
        if sender.send(batch).await.is_err() || failed {
            return;
        }
    }
}

/// Operators that can make any number of batches from one batch of input.
const MULTIPLYING: [&str; 7] = [
    "CrossJoinExec",
    "NestedLoopJoinExec",
    "HashJoinExec",
    "SortMergeJoinExec",
    "SymmetricHashJoinExec",
    "PiecewiseMergeJoinExec",
    "UnnestExec",
];

/// Physical optimizer rule, run after DataFusion's own: each join and unnest spends the task's
/// cooperative budget for every batch it hands on, so a plan whose parent never waits for its
/// leaves (an aggregate over a cross join) still yields, and can be cancelled.
#[derive(Debug, Default)]
pub struct YieldAfterJoins;

impl PhysicalOptimizerRule for YieldAfterJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if MULTIPLYING.contains(&node.name()) {
                Ok(Transformed::yes(Arc::new(CooperativeExec::new(node))))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "yield_after_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;

    fn context() -> SessionContext {
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(YieldAfterJoins))
            .build();
        SessionContext::new_with_state(state)
    }

    async fn plan(ctx: &SessionContext, sql: &str) -> Arc<dyn ExecutionPlan> {
        ctx.sql(sql)
            .await
            .expect("plans")
            .create_physical_plan()
            .await
            .expect("physical plan")
    }

    #[tokio::test]
    async fn batches_arrive_in_full_from_the_other_runtime() {
        let executor = Executor::new(2).expect("runtime");
        let ctx = context();
        let plan = plan(
            &ctx,
            "SELECT value FROM generate_series(1, 100000) ORDER BY value",
        )
        .await;
        let batches: Vec<RecordBatch> = executor
            .execute(plan, ctx.task_ctx())
            .map(|b| b.expect("batch"))
            .collect()
            .await;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 100_000);
    }

    #[tokio::test]
    async fn errors_reach_the_reader() {
        let executor = Executor::new(1).expect("runtime");
        let ctx = context();
        let plan = plan(
            &ctx,
            "SELECT CAST(CASE WHEN value = 5000 THEN 'x' ELSE '1' END AS INT) \
             FROM generate_series(1, 10000)",
        )
        .await;
        let results: Vec<Result<RecordBatch>> =
            executor.execute(plan, ctx.task_ctx()).collect().await;
        assert!(results.last().expect("a result").is_err(), "{results:?}");
    }

    #[tokio::test]
    async fn dropping_the_stream_stops_a_long_query() {
        let executor = Executor::new(1).expect("runtime");
        let ctx = context();
        // About 10^12 rows: it would run for hours.
        let plan = plan(
            &ctx,
            "SELECT count(*) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b",
        )
        .await;
        let mut stream = executor.execute(plan, ctx.task_ctx());
        let first =
            tokio::time::timeout(std::time::Duration::from_millis(200), stream.next()).await;
        assert!(first.is_err(), "the count cannot be done yet");
        drop(stream);
        // The only worker is free again once the plan has been aborted at its next yield.
        let freed = executor.handle().spawn(async { 1 });
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), freed).await;
        assert_eq!(answer.expect("the worker is still busy").expect("joins"), 1);
    }

    #[tokio::test]
    async fn joins_spend_the_budget() {
        let ctx = context();
        let plan = plan(
            &ctx,
            "SELECT count(*) FROM generate_series(1, 10) a JOIN generate_series(1, 10) b \
             ON a.value = b.value",
        )
        .await;
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        let lines: Vec<&str> = shown.lines().map(str::trim).collect();
        let join = lines
            .iter()
            .position(|l| l.starts_with("HashJoinExec"))
            .expect(&shown);
        assert!(lines[join - 1].starts_with("CooperativeExec"), "{shown}");
    }
}
