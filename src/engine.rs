//! The composition root: one [`Engine`] per data directory owns the DataFusion catalog, the UDFs,
//! the built-in SQL objects and the durable tables; a [`Session`] is one user's view of it.
//!
//! Owns what a statement means (which statements the engine intercepts and how they run). It must
//! not know about the wire protocol: the server and the CLI both talk to it through [`Session`].

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::{ConfigExtension, ExtensionOptions};
use datafusion::common::extensions_options;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;

use datafusion::catalog::{CatalogProvider, MemorySchemaProvider};

use crate::catalog;
use crate::config::{Config, DATABASE, Role};
use crate::error::{Error, Result};
use crate::storage::{Storage, StorageOptions, TableOptions};

extensions_options! {
    /// Session options under `finops.*` (`SET finops.currency = 'EUR'`, `SHOW finops.timezone`).
    pub struct FinopsOptions {
        /// Currency of money columns.
        pub currency: String, default = "USD".to_string()
        /// Time zone of budget periods and day buckets.
        pub timezone: String, default = "UTC".to_string()
        /// Window, in hours, within which a repeated prompt counts as redundant.
        pub redundancy_window_hours: u64, default = 24
        /// "Now" for budget periods and checks (a timestamp; empty: the clock), so a past
        /// moment can be replayed.
        pub as_of: String, default = String::new()
    }
}

impl ConfigExtension for FinopsOptions {
    const PREFIX: &'static str = "finops";
}

/// The Postgres run-time parameters of a connection (`TimeZone`, `DateStyle`, ...), copied into
/// its session's options so that `current_setting('TimeZone')` in a query reads what `SHOW`
/// gives. Kept by the server's parameter hook, which owns their values; empty outside a
/// connection.
#[derive(Debug, Clone, Default)]
pub struct PgParameters {
    /// By lower-case name: the name as Postgres spells it (`DateStyle`) and the value.
    values: std::collections::BTreeMap<String, (String, String)>,
}

impl PgParameters {
    /// The value of `name` (any case), if the connection has it.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(|(_, value)| value)
    }

    /// Every parameter as `(name, value)`, names spelled as Postgres spells them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .values()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

impl ExtensionOptions for PgParameters {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> datafusion::common::Result<()> {
        self.values.insert(
            key.to_ascii_lowercase(),
            (key.to_string(), value.to_string()),
        );
        Ok(())
    }

    fn entries(&self) -> Vec<datafusion::common::config::ConfigEntry> {
        // Listed by the parameter hook with their Postgres names, not as session options.
        Vec::new()
    }
}

impl ConfigExtension for PgParameters {
    const PREFIX: &'static str = "pg_parameters";
}

/// Every session option as `(name, value)`, sorted: DataFusion's own and `finops.*`.
pub fn settings(options: &datafusion::common::config::ConfigOptions) -> Vec<(String, String)> {
    // `entries()` ends with every extension's entries under their bare names: `finops.*` are
    // added below with their prefix.
    let mut entries: Vec<(String, String)> = options
        .entries()
        .into_iter()
        .filter(|e| e.key.starts_with("datafusion."))
        .map(|e| (e.key, e.value.unwrap_or_default()))
        .collect();
    if let Some(finops) = options.extensions.get::<FinopsOptions>() {
        for e in finops.entries() {
            let key = if e.key.starts_with("finops.") {
                e.key
            } else {
                format!("finops.{}", e.key)
            };
            entries.push((key, e.value.unwrap_or_default()));
        }
    }
    entries.sort();
    entries
}

/// Who is running statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Login name (`current_user`).
    pub user: String,
    /// What the user may do.
    pub role: Role,
    /// For scoped readers: the teams whose rows they see.
    pub teams: Vec<String>,
}

impl Identity {
    /// The identity of the embedded CLI and the library: an administrator.
    pub fn local_admin() -> Identity {
        Identity {
            user: crate::config::DEFAULT_USER.to_string(),
            role: Role::Admin,
            teams: Vec::new(),
        }
    }
}

/// A configuration table whose rows the FinOps functions read from an in-memory index,
/// rebuilt after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigTable {
    /// `finops.attribution_rules`.
    AttributionRules,
    /// `finops.price_adjustments`.
    PriceAdjustments,
    /// `finops.budgets` (read by the hard-cap state).
    Budgets,
    /// `finops.checks`.
    Checks,
}

impl ConfigTable {
    /// Every validated configuration table.
    pub const ALL: [ConfigTable; 4] = [
        ConfigTable::AttributionRules,
        ConfigTable::PriceAdjustments,
        ConfigTable::Budgets,
        ConfigTable::Checks,
    ];

    /// The tables `finops.usage` reads through its functions' indexes, loaded before the
    /// built-in views exist.
    pub const INDEXED: [ConfigTable; 2] =
        [ConfigTable::AttributionRules, ConfigTable::PriceAdjustments];

    /// `(schema, table)`.
    pub fn name(self) -> (&'static str, &'static str) {
        match self {
            ConfigTable::AttributionRules => crate::attribution::ATTRIBUTION_RULES,
            ConfigTable::PriceAdjustments => crate::adjustments::PRICE_ADJUSTMENTS,
            ConfigTable::Budgets => crate::ownership::BUDGETS,
            ConfigTable::Checks => crate::budget::checks::CHECKS,
        }
    }

    /// How the table is stored (its column defaults).
    pub fn options(self) -> TableOptions {
        match self {
            ConfigTable::Budgets => crate::ownership::budgets_options(),
            ConfigTable::Checks => crate::budget::checks::checks_options(),
            _ => TableOptions::config(),
        }
    }

    /// The table's columns.
    pub fn schema(self) -> SchemaRef {
        match self {
            ConfigTable::AttributionRules => crate::attribution::rules_schema(),
            ConfigTable::PriceAdjustments => crate::adjustments::adjustments_schema(),
            ConfigTable::Budgets => crate::ownership::budgets_schema(),
            ConfigTable::Checks => crate::budget::checks::checks_schema(),
        }
    }

    /// The table `schema.table` names, if it is one.
    pub fn of(schema: Option<&str>, table: &str) -> Option<ConfigTable> {
        Self::ALL.into_iter().find(|t| {
            let (s, n) = t.name();
            n == table && schema.is_none_or(|x| x == s)
        })
    }

    /// Check rows about to be written (INSERT rows, or UPDATE's new rows) on their own; a
    /// check's SQL is planned in `session`.
    pub async fn validate(self, session: &Session, batches: &[RecordBatch]) -> Result<()> {
        match self {
            ConfigTable::Budgets => crate::budget::rows::budgets_from_batches(batches).map(|_| ()),
            ConfigTable::Checks => crate::budget::checks::validate(session, batches).await,
            ConfigTable::AttributionRules => {
                crate::attribution::RuleSet::from_batches(batches).map(|_| ())
            }
            ConfigTable::PriceAdjustments => {
                crate::adjustments::Adjustments::from_batches(batches).map(|_| ())
            }
        }
    }
}

/// One data directory opened: the shared catalog, functions and storage.
pub struct Engine {
    base: SessionContext,
    config: Config,
    storage: Arc<Storage>,
    prices: finops_udfs::PriceBookHandle,
    rules: crate::attribution::RulesHandle,
    adjustments: crate::adjustments::AdjustmentsHandle,
    caps: Arc<crate::budget::cap::Caps>,
    views: std::sync::OnceLock<Arc<crate::materialized::MaterializedViews>>,
    /// Where the server runs query plans; started when first needed.
    executor: std::sync::OnceLock<Arc<crate::executor::Executor>>,
    /// The server's connections (`pg_stat_activity`).
    activity: Arc<crate::activity::Activity>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

/// What a statement produced.
pub enum Output {
    /// Rows, streamed from a DataFrame.
    Rows(DataFrame),
    /// Rows already computed (catalog answers, hook results).
    Batches(SchemaRef, Vec<RecordBatch>),
    /// The rows a command returns (`INSERT ... RETURNING`), already computed; its tag carries
    /// their count.
    Returned {
        /// Command name, e.g. `INSERT`.
        tag: &'static str,
        /// The rows' schema.
        schema: SchemaRef,
        /// The rows.
        batches: Vec<RecordBatch>,
    },
    /// A command with its tag (`CREATE TABLE`, `INSERT 0 3`).
    Command {
        /// Command name, e.g. `INSERT`.
        tag: String,
        /// Rows affected, when the tag carries a count.
        rows: Option<usize>,
    },
}

impl Output {
    /// A command without a row count.
    pub fn command(tag: &str) -> Output {
        Output::Command {
            tag: tag.to_string(),
            rows: None,
        }
    }
}

impl Engine {
    /// Open the data directory named in `config` and register everything.
    pub async fn open(config: Config) -> Result<Arc<Engine>> {
        Self::open_with(config, StorageOptions::default()).await
    }

    /// Open with explicit storage options (tests and benches tune flushing and durability).
    pub async fn open_with(config: Config, storage_options: StorageOptions) -> Result<Arc<Engine>> {
        let storage = Storage::open(&config.data_dir, storage_options).await?;
        let session_config = SessionConfig::new()
            .with_default_catalog_and_schema(DATABASE, "public")
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true)
            .with_option_extension(FinopsOptions::default())
            .with_option_extension(PgParameters::default());
        let mut session_config = session_config;
        {
            let options = session_config.options_mut();
            // `12345678901234.123456` must stay exact: literals are decimals, not floats.
            options.sql_parser.parse_float_as_decimal = true;
            // Timestamps are `timestamptz` in UTC unless the client sets a time zone.
            options.execution.time_zone = Some("+00:00".to_string());
        }
        {
            let finops = session_config
                .options_mut()
                .extensions
                .get_mut::<FinopsOptions>()
                .ok_or_else(|| Error::Internal("finops options not registered".into()))?;
            finops.currency = config.finops.currency.clone();
            finops.timezone = config.finops.timezone.clone();
        }
        let mut state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_default_features()
            .with_optimizer_rule(Arc::new(crate::utc_time::UtcDateCast))
            .with_physical_optimizer_rule(Arc::new(crate::executor::YieldAfterJoins))
            .build();
        {
            use datafusion::execution::FunctionRegistry;
            state.register_expr_planner(Arc::new(crate::json::JsonOperators))?;
            state.register_expr_planner(Arc::new(crate::catalog::IntervalOperators))?;
        }
        let base = SessionContext::new_with_state(state);
        crate::providers::register_factories_in(
            &base,
            Arc::new(crate::providers::ProviderTableFactory::with_cache_budget(
                config.limits.provider_cache_bytes,
            )),
        );
        catalog::register_schemas(&base)?;
        let roles = catalog::Roles::from_config(&config);
        datafusion_pg_catalog::pg_catalog::setup_pg_catalog(&base, DATABASE, roles.clone())
            .map_err(|e| Error::DataFusion(*e))?;
        catalog::register_functions(&base);
        roles.register_owner_function(&base);
        crate::json::register(&base);
        let (_, prices) = crate::pricing::open(&storage).await?;
        finops_udfs::register_all(&base, prices.clone());
        let rules = crate::attribution::RulesHandle::default();
        let adjustments = crate::adjustments::AdjustmentsHandle::default();
        base.register_udf(crate::attribution::AttributeUsageFunc::udf(rules.clone()));
        base.register_udf(crate::adjustments::AdjustedCostFunc::udf(
            adjustments.clone(),
            prices.clone(),
        ));
        let caps = Arc::new(crate::budget::cap::Caps::new(
            crate::budget::period::time_zone(&config.finops.timezone)?,
        ));
        base.register_udf(crate::budget::functions::tag_value_udf());
        base.register_udf(crate::budget::functions::ReserveFunc::udf(Arc::clone(
            &caps,
        )));
        base.register_udf(crate::budget::NowFunc::udf());
        base.register_udf(crate::utc_time::DateTrunc::udf());
        catalog::register_function_catalog(&base, DATABASE)?;
        let engine = Arc::new(Engine {
            base,
            config,
            storage,
            prices,
            rules,
            adjustments,
            caps,
            views: std::sync::OnceLock::new(),
            executor: std::sync::OnceLock::new(),
            activity: Arc::default(),
        });
        let (checks_schema, checks_name) = crate::budget::checks::CHECKS;
        let first_start = engine.storage.table(checks_schema, checks_name).is_none();
        engine.register_durable_tables().await?;
        if let Some(events) = engine.storage.table("finops", crate::schema::USAGE_EVENTS) {
            events.set_append_observer(engine.caps.observer());
        }
        let session = engine.session(Identity::local_admin())?;
        engine.reload_prices(&session).await?;
        for table in ConfigTable::INDEXED {
            engine.reload_config(&session, table).await?;
        }
        crate::statements::restore_provider_tables(&session).await?;
        let views = crate::materialized::MaterializedViews::open(
            engine.storage.object_store(),
            object_store::path::Path::from("materialized"),
            &engine.base,
        )
        .await?;
        views.set_change_feed(Arc::new(crate::usage::UsageChanges::new(
            Arc::clone(&engine.storage),
            &engine.catalog()?,
        )));
        let _ = engine.views.set(Arc::clone(&views));
        engine.create_builtin_objects(&session).await?;
        crate::statements::restore_views(&session).await?;
        crate::materialized::register_pg_catalog_overlay(
            &engine.base,
            DATABASE,
            &views,
            &engine.activity,
        )?;
        if first_start {
            session
                .append(
                    &format!("{checks_schema}.{checks_name}"),
                    vec![crate::budget::checks::builtin_batch()?],
                )
                .await?;
        }
        engine.reload_config(&session, ConfigTable::Budgets).await?;
        Ok(engine)
    }

    /// Create the built-in tables on first start and register every durable table.
    async fn register_durable_tables(&self) -> Result<()> {
        self.storage
            .ensure_table(
                "finops",
                crate::schema::USAGE_EVENTS,
                crate::schema::usage_events_schema(),
                TableOptions::usage(),
            )
            .await?;
        let (schema, name) = crate::statements::PROVIDER_TABLES;
        self.storage
            .ensure_table(
                schema,
                name,
                crate::statements::provider_tables_schema(),
                TableOptions::config(),
            )
            .await?;
        let (schema, name) = crate::statements::VIEW_DEFINITIONS;
        self.storage
            .ensure_table(
                schema,
                name,
                crate::statements::view_definitions_schema(),
                TableOptions::config(),
            )
            .await?;
        for table in ConfigTable::ALL {
            let (schema, name) = table.name();
            self.storage
                .ensure_table(schema, name, table.schema(), table.options())
                .await?;
        }
        let (schema, name) = crate::budget::alerts::ALERTS;
        self.storage
            .ensure_table(
                schema,
                name,
                crate::budget::alerts::alerts_schema(),
                crate::budget::alerts::alerts_options(),
            )
            .await?;
        for ((schema, name), columns) in crate::ownership::tables() {
            self.storage
                .ensure_table(schema, name, columns, TableOptions::config())
                .await?;
        }
        let catalog = self.catalog()?;
        if let Some(finops) = catalog.schema("finops") {
            finops.register_table(
                crate::usage::USAGE_ALL.to_string(),
                Arc::new(crate::usage::UsageAll::new(&catalog)),
            )?;
            use crate::budget::status::{BUDGET_HISTORY, BUDGET_STATUS, BudgetTable, BudgetView};
            finops.register_table(
                BUDGET_STATUS.to_string(),
                Arc::new(BudgetTable::new(BudgetView::Status)),
            )?;
            finops.register_table(
                BUDGET_HISTORY.to_string(),
                Arc::new(BudgetTable::new(BudgetView::History)),
            )?;
            finops.register_table(
                crate::budget::cap::CAP_STATUS.to_string(),
                Arc::new(crate::budget::cap::CapTable::new(Arc::clone(&self.caps))),
            )?;
            finops.register_table(
                crate::usage::BILLS_ALL.to_string(),
                Arc::new(crate::usage::UsageAll::bills(&catalog)),
            )?;
            finops.register_table(
                crate::ingest_errors::INGEST_ERRORS.to_string(),
                Arc::new(crate::ingest_errors::IngestErrors::new(&catalog)),
            )?;
        }
        for (schema_name, table_name, table) in self.storage.tables() {
            let schema = match catalog.schema(&schema_name) {
                Some(s) => s,
                None => {
                    let s = Arc::new(MemorySchemaProvider::new());
                    catalog.register_schema(&schema_name, s.clone())?;
                    s
                }
            };
            schema.register_table(table_name, Arc::new(table))?;
        }
        Ok(())
    }

    /// The hard-cap state behind `finops.cap_status` and `finops.reserve`.
    pub fn caps(&self) -> &Arc<crate::budget::cap::Caps> {
        &self.caps
    }

    /// The price book the UDFs read.
    pub fn prices(&self) -> &finops_udfs::PriceBookHandle {
        &self.prices
    }

    /// Load `finops.model_prices` into the UDFs' index; a table that is not a valid price book
    /// keeps the previous index and fails (SQLSTATE 23514).
    pub async fn reload_prices(&self, session: &Session) -> Result<()> {
        let (schema, table) = crate::pricing::MODEL_PRICES;
        let batches = session
            .context()
            .sql(&format!("SELECT * FROM {schema}.{table}"))
            .await?
            .collect()
            .await?;
        let book = crate::pricing::validate(crate::pricing::rows_of(&batches)?)?;
        self.prices.replace(book);
        Ok(())
    }

    /// Load one of the tables the FinOps functions index (attribution rules, price
    /// adjustments) into its index; rows that do not validate keep the previous index and fail
    /// (SQLSTATE 23514).
    pub async fn reload_config(&self, session: &Session, table: ConfigTable) -> Result<()> {
        let (schema, name) = table.name();
        let batches = session
            .context()
            .sql(&format!("SELECT * FROM {schema}.{name}"))
            .await?
            .collect()
            .await?;
        match table {
            ConfigTable::AttributionRules => self
                .rules
                .replace(crate::attribution::RuleSet::from_batches(&batches)?),
            ConfigTable::PriceAdjustments => self
                .adjustments
                .replace(crate::adjustments::Adjustments::from_batches(&batches)?),
            ConfigTable::Budgets => {
                crate::budget::rows::budgets_from_batches(&batches)?;
                self.caps.reload(&self.base, chrono::Utc::now()).await?;
            }
            ConfigTable::Checks => {
                crate::budget::checks::checks_from_batches(&batches)?;
            }
        }
        Ok(())
    }

    /// Create the built-in objects: `finops.usage` and the plain views of `sql/` are code, not
    /// data, so each start defines them afresh from the compiled-in SQL; a built-in
    /// materialized view is created at first start and kept (with its stored result) after.
    async fn create_builtin_objects(&self, session: &Session) -> Result<()> {
        let views = self.views()?;
        let all = std::iter::once(crate::builtin_sql::USAGE_VIEW)
            .chain(crate::builtin_sql::BUILTIN_SQL.iter().copied());
        for (name, sql) in all {
            if views.contains(session.context(), name) {
                continue;
            }
            session.sql(sql).await.map_err(|e| {
                Error::Internal(format!("built-in object {name} could not be created: {e}"))
            })?;
        }
        Ok(())
    }

    /// The engine's own context (an administrator's, with no access rules): materialized
    /// views are refreshed in it, so a stored result never depends on who asked.
    pub fn base_context(&self) -> &SessionContext {
        &self.base
    }

    /// The materialized views of the data directory.
    pub fn views(&self) -> Result<&Arc<crate::materialized::MaterializedViews>> {
        self.views
            .get()
            .ok_or_else(|| Error::Internal("materialized views not opened".into()))
    }

    /// Rows for `table` are arriving in a statement not committed yet (a large COPY): `auto`
    /// views over it wait for the load to end before their pending refresh.
    pub fn data_loading(&self, table: &str) {
        let Some(views) = self.views.get() else {
            return;
        };
        let bare = table.rsplit('.').next().unwrap_or(table);
        if bare == crate::schema::USAGE_EVENTS || table.starts_with("providers.") {
            let usage_all = format!("finops.{}", crate::usage::USAGE_ALL);
            views.notify_loading(&[table, &usage_all]);
        } else {
            views.notify_loading(&[table]);
        }
    }

    /// Tell the materialized views that `table` changed: `appended` rows only (views reading
    /// it refresh incrementally; `auto` ones soon after), or rows changed in place (they are
    /// stale and refresh fully). `finops.usage` reads the native table, the provider tables and,
    /// through its functions, the price book, adjustments and attribution rules, so a change to
    /// any of them reaches the views over `finops.usage`.
    pub async fn data_changed(&self, table: &str, appended: bool) {
        let Some(views) = self.views.get() else {
            return;
        };
        let bare = table.rsplit('.').next().unwrap_or(table);
        // Prices, adjustments and rules reach `finops.usage` through its functions: a row added
        // to them changes rows already there, so it is not an append for the views.
        let feeds_functions = [
            crate::pricing::MODEL_PRICES.1,
            crate::attribution::ATTRIBUTION_RULES.1,
            crate::adjustments::PRICE_ADJUSTMENTS.1,
        ]
        .contains(&bare);
        let appended = appended && !feeds_functions;
        let feeds_usage = bare == crate::schema::USAGE_EVENTS
            || table.starts_with("providers.")
            || feeds_functions;
        let usage_all = format!("finops.{}", crate::usage::USAGE_ALL);
        let mut names = vec![table];
        if feeds_usage {
            names.push(&usage_all);
        }
        if appended {
            for name in names {
                views.notify_appended(name);
            }
        } else if let Err(e) = views.mark_stale(&names).await {
            log::warn!("could not mark views over {table} stale: {e}");
        }
        if feeds_usage && !self.caps.is_empty() {
            let now = chrono::Utc::now();
            let result = if appended && bare == crate::schema::USAGE_EVENTS {
                self.caps.apply_appended(&self.base, now).await
            } else {
                self.caps.refresh(&self.base, now).await
            };
            if let Err(e) = result {
                log::warn!("could not refresh the hard caps after a change to {table}: {e}");
            }
        }
    }

    /// The durable storage of the data directory.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// The `finops` database's catalog.
    pub fn catalog(&self) -> Result<Arc<dyn CatalogProvider>> {
        self.base
            .catalog(DATABASE)
            .ok_or_else(|| Error::Internal(format!("catalog {DATABASE} missing")))
    }

    /// Flush unflushed writes so the next start replays nothing (durability does not need it).
    pub async fn close(&self) -> Result<()> {
        self.storage.close().await
    }

    /// The server's connections, as `pg_stat_activity` lists them.
    pub fn activity(&self) -> &Arc<crate::activity::Activity> {
        &self.activity
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The runtime the server runs query plans on (see [`crate::executor`]), one worker per
    /// core, started on first use.
    pub fn executor(&self) -> Result<Arc<crate::executor::Executor>> {
        if let Some(executor) = self.executor.get() {
            return Ok(Arc::clone(executor));
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let executor = crate::executor::Executor::new(threads)
            .map_err(|e| Error::io("starting the query runtime", e))?;
        Ok(Arc::clone(self.executor.get_or_init(|| Arc::new(executor))))
    }

    /// Run the rows of `df` on the [executor](Engine::executor).
    pub async fn execute_stream(
        &self,
        df: DataFrame,
    ) -> Result<datafusion::execution::SendableRecordBatchStream> {
        let ctx = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await?;
        Ok(self.executor()?.execute(plan, ctx))
    }

    /// A new session for `identity`: its own settings (`SET` never leaks between sessions) and
    /// its own memory pool, over the shared catalog.
    pub fn session(self: &Arc<Self>, identity: Identity) -> Result<Session> {
        let base_state = self.base.state();
        let runtime = self.session_runtime(base_state.runtime_env())?;
        let mut builder = SessionStateBuilder::new_from_existing(base_state)
            .with_runtime_env(runtime)
            .with_session_id(uuid_like());
        if identity.role != crate::config::Role::Admin {
            let attribute = self
                .base
                .state()
                .scalar_functions()
                .get("attribute_usage")
                .cloned()
                .ok_or_else(|| Error::Internal("attribute_usage not registered".into()))?;
            builder = builder.with_analyzer_rule(Arc::new(crate::access::AccessRule::new(
                identity.clone(),
                attribute,
            )));
        }
        let state = builder.build();
        let ctx = Arc::new(SessionContext::new_with_state(state));
        catalog::register_session_functions(&ctx, &identity);
        let backend_pid = Arc::new(std::sync::atomic::AtomicI32::new(
            i32::try_from(std::process::id()).unwrap_or(i32::MAX),
        ));
        crate::activity::register_functions(&ctx, &identity, &self.activity, &backend_pid);
        ctx.register_udtf(
            crate::budget::run::RUN_CHECKS,
            Arc::new(crate::budget::run::RunChecksFunction::new(
                self,
                &ctx,
                identity.clone(),
            )),
        );
        Ok(Session {
            engine: Arc::clone(self),
            ctx,
            identity,
            kept: Arc::default(),
            backend_pid,
            prepared: Arc::default(),
        })
    }

    fn session_runtime(&self, base: &Arc<RuntimeEnv>) -> Result<Arc<RuntimeEnv>> {
        let limit = self.config.limits.query_memory_bytes;
        let builder = RuntimeEnvBuilder::from_runtime_env(base);
        let builder = if limit > 0 {
            builder.with_memory_limit(limit, 1.0)
        } else {
            builder
        };
        Ok(builder.build_arc()?)
    }
}

fn uuid_like() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One user's connection to the engine.
#[derive(Clone)]
pub struct Session {
    engine: Arc<Engine>,
    ctx: Arc<SessionContext>,
    identity: Identity,
    kept: Arc<KeptState>,
    /// What `pg_backend_pid()` returns: this process's id, or the connection's once the server
    /// sets it.
    backend_pid: Arc<std::sync::atomic::AtomicI32>,
    /// The names of the statements SQL `PREPARE` made, for `DEALLOCATE ALL` and `DISCARD ALL`
    /// (DataFusion keeps the plans but does not list them).
    prepared: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

/// The copy of a session's state its last query ran on, kept for the next one: a copy takes
/// its settings and a registry of several hundred functions, which is a good part of a short
/// query's time. Any statement that may change the session's state drops it (a new
/// generation), so a copy made before that change is never kept.
#[derive(Default)]
struct KeptState {
    state: std::sync::Mutex<Option<(datafusion::execution::SessionState, TaskSlot)>>,
    generation: std::sync::atomic::AtomicU64,
}

/// A copy of a session's state to plan and run one query on (from [`Session::planning_state`]).
pub struct PlanningState {
    /// The state, its clock set to the start of this query.
    pub state: datafusion::execution::SessionState,
    engine: Arc<Engine>,
    generation: u64,
    task: TaskSlot,
}

/// The task context made from a kept state (made from it on first use: it copies the
/// function registries too).
type TaskSlot = std::sync::OnceLock<Arc<datafusion::execution::TaskContext>>;

impl PlanningState {
    /// Which version of the session's settings this copy has: it changes whenever a
    /// statement may have changed them, so what was derived from an older copy is stale.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The task context to run this query's plan in.
    pub fn task_ctx(&self) -> Arc<datafusion::execution::TaskContext> {
        Arc::clone(self.task.get_or_init(|| self.state.task_ctx()))
    }

    /// Run `plan` on the engine's [executor](Engine::executor), in this state's task context.
    pub fn execute(
        &self,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    ) -> Result<datafusion::execution::SendableRecordBatchStream> {
        Ok(self.engine.executor()?.execute(plan, self.task_ctx()))
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session over `ctx`, a context [`Engine::session`] made for `identity`: what a
    /// function running inside one of its queries uses to run more.
    pub(crate) fn resume(
        engine: Arc<Engine>,
        ctx: Arc<SessionContext>,
        identity: Identity,
    ) -> Self {
        Session {
            engine,
            ctx,
            identity,
            kept: Arc::default(),
            // `ctx` keeps the `pg_backend_pid()` of the session it was made for; the server
            // never resumes a session, so nothing sets this one.
            backend_pid: Arc::new(std::sync::atomic::AtomicI32::new(0)),
            prepared: Arc::default(),
        }
    }

    /// Note that SQL `PREPARE` made the statement `name` (`made`) or `DEALLOCATE` dropped it.
    pub(crate) fn note_prepared(&self, name: &str, made: bool) {
        let mut prepared = crate::lock(&self.prepared);
        if made {
            prepared.insert(name.to_string());
        } else {
            prepared.remove(name);
        }
    }

    /// Whether SQL `PREPARE` made a statement called `name` that is still there.
    pub(crate) fn is_prepared(&self, name: &str) -> bool {
        crate::lock(&self.prepared).contains(name)
    }

    /// Drop every statement SQL `PREPARE` made in this session (`DEALLOCATE ALL`).
    pub async fn deallocate_all(&self) {
        let names = std::mem::take(&mut *crate::lock(&self.prepared));
        if names.is_empty() {
            return;
        }
        for name in names {
            let plan = datafusion::logical_expr::LogicalPlan::Statement(
                datafusion::logical_expr::Statement::Deallocate(
                    datafusion::logical_expr::Deallocate { name },
                ),
            );
            // The only failure is a statement already gone, which is what is asked.
            let _ = self.ctx.execute_logical_plan(plan).await;
        }
        self.forget_state();
    }

    /// The DataFusion context of this session.
    pub fn context(&self) -> &Arc<SessionContext> {
        &self.ctx
    }

    /// The engine this session belongs to.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Who this session runs as.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Make `pg_backend_pid()` return `pid`, the process id the server gave the connection.
    pub fn set_backend_pid(&self, pid: i32) {
        self.backend_pid
            .store(pid, std::sync::atomic::Ordering::Relaxed);
    }

    /// Set `finops.as_of` ("now" for budget periods and checks; empty: the clock).
    pub fn set_as_of(&self, as_of: &str) -> Result<()> {
        crate::budget::period::as_of(as_of)?;
        let state = self.ctx.state_ref();
        let mut state = state.write();
        let finops = state
            .config_mut()
            .options_mut()
            .extensions
            .get_mut::<FinopsOptions>()
            .ok_or_else(|| Error::Internal("finops options not registered".into()))?;
        finops.as_of = as_of.to_string();
        drop(state);
        self.forget_state();
        Ok(())
    }

    /// Put session options (`finops.*`, `datafusion.*`) back to the server's: the one named, or
    /// all of them (`RESET finops.currency`, `RESET ALL`).
    pub fn reset_options(&self, name: Option<&str>) -> Result<()> {
        let base = self.engine.base.state().config_options().as_ref().clone();
        let mut fresh = base.clone();
        let state = self.ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        if let Some(name) = name {
            let name = name.to_ascii_lowercase();
            let defaults: std::collections::HashMap<String, String> =
                settings(&base).into_iter().collect();
            if !defaults.contains_key(&name) {
                return Err(Error::InvalidParameter(format!(
                    "unrecognized configuration parameter \"{name}\""
                )));
            }
            // Every other option keeps what this session set it to.
            for (key, value) in settings(options) {
                if key != name && defaults.get(&key) != Some(&value) {
                    fresh.set(&key, &value)?;
                }
            }
        }
        // The connection's Postgres parameters are not session options.
        if let Some(parameters) = options.extensions.get::<PgParameters>() {
            fresh.extensions.insert(parameters.clone());
        }
        *options = fresh;
        drop(state);
        self.forget_state();
        Ok(())
    }

    /// Keep the connection's Postgres parameters (all of them, with their current values) where
    /// queries read them (see [`PgParameters`]).
    pub fn set_pg_parameters(&self, entries: &[(String, String)]) {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        let values = entries
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), (name.clone(), value.clone())))
            .collect();
        state
            .config_mut()
            .options_mut()
            .extensions
            .insert(PgParameters { values });
        drop(state);
        self.forget_state();
    }

    /// A copy of this session's state (settings, functions, catalog), to plan and run on.
    pub fn state(&self) -> datafusion::execution::SessionState {
        self.ctx.state()
    }

    /// A copy of this session's state to plan and run one read-only query on: the one kept
    /// from the previous query (see [`Session::keep_state`]) with its clock set to now, or a
    /// new copy.
    pub fn planning_state(&self) -> PlanningState {
        use std::sync::atomic::Ordering;
        let generation = self.kept.generation.load(Ordering::Acquire);
        let kept = crate::lock(&self.kept.state).take();
        let (state, task) = match kept {
            Some((mut state, task)) => {
                state.mark_start_execution();
                (state, task)
            }
            None => (self.ctx.state(), TaskSlot::new()),
        };
        PlanningState {
            state,
            engine: Arc::clone(&self.engine),
            generation,
            task,
        }
    }

    /// Keep `planning` for the next query, unless a statement changed the session's state
    /// since it was copied. Only a state nothing but planning and running read-only queries
    /// used may be kept.
    pub fn keep_state(&self, planning: PlanningState) {
        use std::sync::atomic::Ordering;
        let mut kept = crate::lock(&self.kept.state);
        if self.kept.generation.load(Ordering::Acquire) == planning.generation {
            *kept = Some((planning.state, planning.task));
        }
    }

    /// Drop the kept copy of the state: call after anything that may have changed the
    /// session's settings or functions (`SET`, a statement the engine or a hook ran).
    pub fn forget_state(&self) {
        use std::sync::atomic::Ordering;
        let mut kept = crate::lock(&self.kept.state);
        self.kept.generation.fetch_add(1, Ordering::AcqRel);
        *kept = None;
    }

    /// Whether the engine runs `statement` itself rather than handing it to DataFusion.
    pub fn intercepts(&self, statement: &Statement) -> bool {
        crate::statements::intercepts(statement)
    }

    /// Run one parsed statement.
    pub async fn execute(&self, statement: Statement) -> Result<Output> {
        self.execute_df(DFStatement::Statement(Box::new(statement)))
            .await
    }

    /// Run one parsed statement, including DataFusion's own (`CREATE EXTERNAL TABLE`).
    pub async fn execute_df(&self, statement: DFStatement) -> Result<Output> {
        let output = crate::statements::execute(self, statement).await;
        // `SET` and its kin change the state a kept copy was made from.
        self.forget_state();
        output
    }

    /// Parse and run every statement of `sql`, returning each output in order.
    pub async fn sql(&self, sql: &str) -> Result<Vec<Output>> {
        if let Some(refresh) = crate::statements::refresh_statement(sql) {
            return Ok(vec![
                crate::statements::materialized_view(self, refresh?).await?,
            ]);
        }
        let statements = crate::statements::parse(sql)?;
        let mut outputs = Vec::with_capacity(statements.len());
        for statement in statements {
            outputs.push(self.execute_df(statement).await?);
        }
        Ok(outputs)
    }

    /// Where `COPY table [(columns)] FROM STDIN` writes: the table, its schema and the input
    /// columns' positions in it.
    pub async fn copy_target(
        &self,
        table: &str,
        columns: &[String],
    ) -> Result<(String, datafusion::arrow::datatypes::SchemaRef, Vec<usize>)> {
        crate::access::authorize_copy_in(&self.identity, table)?;
        let provider = self
            .ctx
            .table_provider(table)
            .await
            .map_err(|_| Error::TableNotFound(table.to_string()))?;
        // Rows are parsed straight into the stored types (a usage table is scanned with text
        // as views, but stores and appends plain `Utf8`).
        let schema = match provider.downcast_ref::<crate::storage::DurableTable>() {
            Some(durable) => durable.stored_schema(),
            None => provider.schema(),
        };
        let targets = if columns.is_empty() {
            (0..schema.fields().len()).collect()
        } else {
            columns
                .iter()
                .map(|c| {
                    schema.index_of(c).map_err(|_| {
                        Error::DataFusion(datafusion::error::DataFusionError::SchemaError(
                            Box::new(datafusion::common::SchemaError::FieldNotFound {
                                field: Box::new(datafusion::common::Column::from_name(c)),
                                valid_fields: vec![],
                            }),
                            Box::new(None),
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?
        };
        Ok((table.to_string(), schema, targets))
    }

    /// Append `batches` to `table` as one statement; returns the rows written.
    pub async fn append(&self, table: &str, batches: Vec<RecordBatch>) -> Result<u64> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(0);
        }
        let df = self.ctx.read_batches(batches)?;
        let counts = df
            .write_table(table, datafusion::dataframe::DataFrameWriteOptions::new())
            .await?;
        self.engine.data_changed(table, true).await;
        Ok(counts
            .iter()
            .filter_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::UInt64Array>()
            })
            .flat_map(|a| a.values().iter().copied())
            .sum())
    }

    /// Where the rows of `COPY table FROM STDIN` go, as the parser produces them: a durable table
    /// stages them while they arrive (bounded memory, published at [`CopySink::finish`]); any
    /// other table gets them all at once at the end.
    pub async fn copy_sink(&self, table: &str) -> Result<CopySink> {
        let provider = self
            .ctx
            .table_provider(table)
            .await
            .map_err(|_| Error::TableNotFound(table.to_string()))?;
        let rows = match provider.downcast_ref::<crate::storage::DurableTable>() {
            Some(durable) => CopyRows::Staged(durable.bulk_append()),
            None => CopyRows::Buffered(Vec::new()),
        };
        Ok(CopySink {
            table: table.to_string(),
            rows,
            engine: Arc::clone(&self.engine),
        })
    }

    /// Run `sql` (one query) and collect its rows.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let mut outputs = self.sql(sql).await?;
        match outputs.pop() {
            Some(Output::Rows(df)) => Ok(df.collect().await?),
            Some(Output::Batches(_, batches) | Output::Returned { batches, .. }) => Ok(batches),
            Some(Output::Command { .. }) | None => Ok(Vec::new()),
        }
    }
}

/// The rows of one `COPY ... FROM STDIN` on their way into a table (see [`Session::copy_sink`]).
/// Dropping it without [`CopySink::finish`] stores nothing.
#[derive(Debug)]
pub struct CopySink {
    table: String,
    rows: CopyRows,
    engine: Arc<Engine>,
}

#[derive(Debug)]
enum CopyRows {
    Staged(crate::storage::BulkAppend),
    Buffered(Vec<RecordBatch>),
}

impl CopySink {
    /// Add parsed rows. On error the statement is over and nothing of it is stored.
    pub async fn push(&mut self, batches: Vec<RecordBatch>) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        match &mut self.rows {
            CopyRows::Staged(append) => {
                self.engine.data_loading(&self.table);
                append.push(batches).await
            }
            CopyRows::Buffered(all) => {
                all.extend(batches);
                Ok(())
            }
        }
    }

    /// Store every row pushed as one atomic statement; returns the rows inserted.
    pub async fn finish(self, session: &Session) -> Result<u64> {
        match self.rows {
            CopyRows::Staged(append) => {
                let rows = append.commit().await?;
                if rows > 0 {
                    session.engine.data_changed(&self.table, true).await;
                }
                Ok(rows)
            }
            CopyRows::Buffered(batches) => session.append(&self.table, batches).await,
        }
    }

    /// Give up: nothing of the statement is stored, and what was staged is deleted now.
    pub async fn abort(self) {
        if let CopyRows::Staged(append) = self.rows {
            append.abort().await;
        }
    }
}
