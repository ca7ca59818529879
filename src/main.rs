//! The `finops-db` command line: parses arguments, builds the configuration and calls the library.
//!
//! The only place that uses `anyhow` and prints to the terminal.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use finops_db::Engine;
use finops_db::config::{Config, Overrides};
use finops_db::engine::{Identity, Output};
use finops_db::server::Server;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// finops-db: the FinOps database for AI APIs, served over the Postgres wire protocol.
#[derive(Parser, Debug)]
#[command(name = "finops-db", version, about)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command shares.
#[derive(Args, Debug, Clone)]
struct Common {
    /// Data directory: a path or an object-store URL (file://, s3://, gs://, az://).
    #[arg(long, global = true, env = "FINOPS_DATA_DIR")]
    data_dir: Option<String>,
    /// TOML configuration file.
    #[arg(long, global = true, env = "FINOPS_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the Postgres wire protocol.
    Serve {
        /// Address to listen on [default: 127.0.0.1:5433].
        #[arg(long, env = "FINOPS_LISTEN")]
        listen: Option<String>,
        /// Print the effective configuration (without secrets) and exit.
        #[arg(long)]
        print_config: bool,
        /// Load the demo data set (90 days up to today) first, unless the data directory
        /// already holds usage.
        #[arg(long)]
        demo: bool,
    },
    /// Write the demo data set as files (Parquet usage, config CSV and SQL, provider exports).
    Demo {
        /// Folder to write into (created).
        #[arg(long)]
        out: PathBuf,
        /// Last day of the data [default: today, UTC].
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
    },
    /// Run SQL on the data directory without a server and print the result.
    Sql {
        /// One or more statements.
        query: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Load usage files into finops.usage_events: one atomic, idempotent statement per file.
    ///
    /// KIND is `usage` (CSV with a header, Parquet or JSON Lines in the columns of
    /// finops.usage_events) or a provider export format such as `openai_usage`.
    Ingest {
        /// `usage` or a provider format (openai_usage, anthropic_usage, focus, ...).
        kind: String,
        /// A file or a folder: a path or an object-store URL (file://, s3://, gs://, az://).
        location: String,
    },
    /// Manage the price book (finops.model_prices).
    Prices {
        #[command(subcommand)]
        command: PricesCommand,
    },
    /// Run the checks of finops.checks once and record and deliver what they raise.
    /// Exit status: 0 nothing fired, 1 something fired, 2 error.
    Check {
        /// Run only this check (even if disabled).
        #[arg(long)]
        name: Option<String>,
        /// Evaluate as of this moment instead of now (e.g. 2026-05-31T18:00:00Z).
        #[arg(long)]
        as_of: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
        format: CheckFormat,
        /// Run the checks on this running server instead of the data directory (which a server
        /// keeps to itself): a libpq connection string or postgres:// URL, as an admin user; the
        /// password may come from PGPASSWORD. The server records the alerts and delivers them.
        #[arg(long, env = "FINOPS_SERVER")]
        server: Option<String>,
    },
    /// Read a password from standard input and print its hash for the config file.
    HashPassword,
}

#[derive(Subcommand, Debug)]
enum PricesCommand {
    /// Load a genai-prices data.json or a litellm model_prices JSON file into finops.model_prices,
    /// replacing rows with the same (provider, model, match, valid_from).
    Import {
        /// The catalog file (JSON).
        file: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum CheckFormat {
    Table,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Table,
    Csv,
    Json,
}

fn load_config(common: &Common, listen: Option<String>) -> Result<Config> {
    // clap has already merged flags over environment variables.
    let overrides = Overrides {
        data_dir: common.data_dir.clone(),
        listen,
    };
    Ok(Config::load(common.config.as_deref(), &[overrides])?)
}

/// Load the demo into `engine`; its provider export folders go beside a local data directory.
async fn load_demo(engine: &Arc<Engine>, config: &Config) -> Result<()> {
    let local = match config.data_dir.strip_prefix("file://") {
        Some(path) => Some(PathBuf::from(path)),
        None if !config.data_dir.contains("://") => Some(PathBuf::from(&config.data_dir)),
        None => None,
    };
    let exports = local.map(|dir| dir.join("demo-exports"));
    let today = chrono::Utc::now().date_naive();
    let started = std::time::Instant::now();
    let loaded = finops_db::demo::load(
        engine,
        today,
        finops_db::demo::DEFAULT_ROWS_PER_DAY,
        exports,
    )
    .await
    .context("loading the demo data set")?;
    match loaded {
        finops_db::demo::Loaded::Loaded {
            usage_rows,
            provider_tables,
        } => log::info!(
            "demo loaded in {:.1} s: {usage_rows} usage rows over {} days ending {today}, \
             provider tables {}",
            started.elapsed().as_secs_f64(),
            finops_db::demo::DAYS,
            provider_tables.join(", ")
        ),
        finops_db::demo::Loaded::AlreadyHasData => log::info!(
            "demo not loaded: finops.usage_events in {} already has rows",
            config.data_dir
        ),
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve {
            listen,
            print_config,
            demo,
        } => {
            let config = load_config(&cli.common, listen)?;
            if print_config {
                print!("{}", config.to_redacted_toml());
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let engine = Engine::open(config.clone()).await?;
            if demo {
                load_demo(&engine, &config).await?;
            }
            let server = Server::bind(Arc::clone(&engine), &config).await?;
            let addr = server.local_addr()?;
            log::info!(
                "finops-db {} listening on {addr} (database {}, data {})",
                env!("CARGO_PKG_VERSION"),
                finops_db::config::DATABASE,
                config.data_dir
            );
            if config.users.is_empty() {
                log::info!(
                    "no users configured: log in as {}/{} (loopback only)",
                    finops_db::config::DEFAULT_USER,
                    finops_db::config::DEFAULT_PASSWORD
                );
            }
            let scheduler = finops_db::budget::spawn_scheduler(
                Arc::clone(&engine),
                std::time::Duration::from_secs(30),
            );
            let served = server.run(finops_db::server::shutdown_signal()).await;
            scheduler.abort();
            served?;
        }
        Command::Sql { query, format } => {
            let config = load_config(&cli.common, None)?;
            let engine = Engine::open(config).await?;
            let session = engine.session(Identity::local_admin())?;
            for output in session.sql(&query).await? {
                match output {
                    Output::Rows(df) => {
                        let schema = Arc::new(df.schema().as_arrow().clone());
                        print_batches(&schema, &df.collect().await?, format)?
                    }
                    Output::Batches(schema, batches)
                    | Output::Returned {
                        schema, batches, ..
                    } => print_batches(&schema, &batches, format)?,
                    Output::Command { tag, rows } => match rows {
                        Some(n) => println!("{tag} {n}"),
                        None => println!("{tag}"),
                    },
                }
            }
        }
        Command::Demo { out, as_of } => {
            let as_of = as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let manifest = finops_db::demo::write_demo(&out, as_of)?;
            println!(
                "wrote {} usage rows ending {} and the demo configuration to {} (see {})",
                manifest.usage_rows,
                manifest.as_of,
                out.display(),
                manifest.readme_path.display()
            );
        }
        Command::Ingest { kind, location } => {
            let kind = finops_db::ingest::IngestKind::parse(&kind)?;
            let config = load_config(&cli.common, None)?;
            let engine = Engine::open(config).await?;
            let session = engine.session(Identity::local_admin())?;
            let outcomes = finops_db::ingest::ingest(&session, kind, &location).await?;
            let mut failed = 0usize;
            for outcome in &outcomes {
                match &outcome.result {
                    Ok(done) => println!(
                        "ingested {} rows ({} skipped as duplicates) from {}",
                        done.inserted,
                        done.duplicates(),
                        outcome.file
                    ),
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {e} (nothing stored from {})", outcome.file);
                    }
                }
            }
            engine.close().await?;
            if failed > 0 {
                anyhow::bail!("{failed} of {} files rejected", outcomes.len());
            }
        }
        Command::Prices {
            command: PricesCommand::Import { file },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let config = load_config(&cli.common, None)?;
            let engine = Engine::open(config).await?;
            let session = engine.session(Identity::local_admin())?;
            let name = file.display().to_string();
            let report = finops_db::pricing::import::import(&session, &name, &text).await?;
            println!(
                "imported {} price rows ({}) from {name}: {} inserted, {} replaced, {} unchanged, {} overlapping rows superseded",
                report.rows,
                report.format,
                report.inserted,
                report.replaced,
                report.unchanged,
                report.superseded
            );
            engine.close().await?;
        }
        Command::Check {
            name,
            as_of,
            format,
            server,
        } => {
            let run = match server {
                Some(server) => check_on_server(&server, name, as_of).await,
                None => check(load_config(&cli.common, None)?, name, as_of).await,
            };
            return Ok(report_checks(run, format));
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "empty password");
            println!("{}", finops_db::server::auth::hash_password(password));
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Run the checks on the data directory, record and deliver their new alerts.
async fn check(
    config: Config,
    name: Option<String>,
    as_of: Option<String>,
) -> Result<finops_db::budget::alerts::Run> {
    use finops_db::budget::alerts;
    let engine = Engine::open(config).await.map_err(|e| match e {
        finops_db::Error::InUse(_) => {
            anyhow::anyhow!("{e}: run the checks on the server that holds it with check --server")
        }
        other => other.into(),
    })?;
    let session = engine.session(Identity::local_admin())?;
    if let Some(as_of) = &as_of {
        session.set_as_of(as_of)?;
    }
    let run = alerts::run_named(&session, name.as_deref()).await?;
    if let Err(e) = alerts::deliver_pending(
        &session,
        &reqwest::Client::new(),
        &alerts::Delivery::default(),
    )
    .await
    {
        log::warn!("delivering alerts failed: {e}");
    }
    engine.close().await?;
    Ok(run)
}

/// Run the checks on a server through `run_checks()`; the server records and delivers the alerts.
async fn check_on_server(
    server: &str,
    name: Option<String>,
    as_of: Option<String>,
) -> Result<finops_db::budget::alerts::Run> {
    use finops_db::budget::alerts::{Alert, Run};
    use tokio_postgres::SimpleQueryMessage;
    let mut config: tokio_postgres::Config = server
        .parse()
        .with_context(|| format!("--server {server:?} is not a connection string"))?;
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    if config.get_dbname().is_none() {
        config.dbname(finops_db::config::DATABASE);
    }
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        anyhow::bail!("check --server connects without TLS; sslmode=require cannot be met");
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {server}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::warn!("connection to the server: {e}");
        }
    });
    let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
    if let Some(as_of) = &as_of {
        client
            .batch_execute(&format!("SET finops.as_of = {}", quote(as_of)))
            .await?;
    }
    let call = match &name {
        Some(name) => format!("SELECT * FROM run_checks({})", quote(name)),
        None => "SELECT * FROM run_checks()".to_string(),
    };
    let mut run = Run::default();
    for message in client.simple_query(&call).await? {
        let SimpleQueryMessage::Row(row) = message else {
            continue;
        };
        let text = |column: &str| row.get(column).unwrap_or_default().to_string();
        if let Some(error) = row.get("error") {
            run.errors.push((text("check_name"), error.to_string()));
            continue;
        }
        let payload = text("payload");
        run.alerts.push(Alert {
            alert_id: text("alert_id"),
            check_name: text("check_name"),
            key: text("key"),
            period: text("period"),
            severity: text("severity"),
            message: text("message"),
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
            notify: text("notify"),
            new: row.get("new") == Some("t"),
        });
    }
    Ok(run)
}

/// Print a run of the checks (or why it failed) and give the exit status: 0 nothing fired, 1
/// something fired, 2 an error.
fn report_checks(
    run: Result<finops_db::budget::alerts::Run>,
    format: CheckFormat,
) -> std::process::ExitCode {
    let run = match run {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match format {
        CheckFormat::Json => match serde_json::to_string_pretty(&run) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        CheckFormat::Table => {
            for a in &run.alerts {
                println!(
                    "{:<24} {:<8} {:<4} {:<40} {}",
                    a.check_name,
                    a.severity,
                    if a.new { "new" } else { "seen" },
                    a.key,
                    a.message
                );
            }
            for (check, error) in &run.errors {
                eprintln!("check {check} failed: {error}");
            }
            println!(
                "{} alert(s), {} new, {} check error(s)",
                run.alerts.len(),
                run.alerts.iter().filter(|a| a.new).count(),
                run.errors.len()
            );
        }
    }
    std::process::ExitCode::from(if !run.errors.is_empty() {
        2
    } else if !run.alerts.is_empty() {
        1
    } else {
        0
    })
}

/// Print a result: as psql's aligned table, as CSV (what `COPY ... TO STDOUT (FORMAT csv, HEADER)`
/// writes) or as a JSON array of objects. Table and CSV values are the Postgres text a client
/// receives from the server.
fn print_batches(schema: &SchemaRef, batches: &[RecordBatch], format: Format) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => {
            let rows = finops_db::copy::text_rows(batches)?;
            write!(out, "{}", aligned_table(schema, &rows))?;
        }
        Format::Csv => {
            let options = finops_db::copy::CopyOptions {
                format: finops_db::copy::CopyFormat::Csv,
                delimiter: ',',
                null: String::new(),
                header: true,
                quote: '"',
                escape: '"',
            };
            let mut text = finops_db::copy::render_header(schema, &options);
            for batch in batches {
                finops_db::copy::render(batch, &options, &mut text)?;
            }
            out.write_all(&text)?;
        }
        Format::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(&mut out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Rows of text values laid out as psql's aligned format: centered column names, numbers
/// right-aligned, NULL empty, and the row count below.
fn aligned_table(schema: &SchemaRef, rows: &[Vec<Option<String>>]) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let right: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().is_numeric())
        .collect();
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = names.iter().map(|n| width(n)).collect();
    for row in rows {
        for (w, value) in widths.iter_mut().zip(row) {
            *w = (*w).max(value.as_deref().map_or(0, width));
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>| format!("{}\n", cells.join("|").trim_end());
    out.push_str(&line(
        names
            .iter()
            .zip(&widths)
            .map(|(name, w)| {
                let pad = w - width(name);
                let left = pad / 2;
                format!(" {}{name}{} ", " ".repeat(left), " ".repeat(pad - left))
            })
            .collect(),
    ));
    out.push_str(&format!(
        "{}\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    ));
    for row in rows {
        out.push_str(&line(
            row.iter()
                .zip(&widths)
                .zip(&right)
                .map(|((value, w), right)| {
                    let value = value.as_deref().unwrap_or("");
                    let pad = " ".repeat(w - width(value));
                    if *right {
                        format!(" {pad}{value} ")
                    } else {
                        format!(" {value}{pad} ")
                    }
                })
                .collect(),
        ));
    }
    let n = rows.len();
    out.push_str(&format!("({n} row{})\n", if n == 1 { "" } else { "s" }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn aligned_table_looks_like_psql() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("team", DataType::Utf8, true),
            Field::new("cost", DataType::Decimal128(38, 2), true),
        ]));
        let rows = vec![
            vec![Some("search".to_string()), Some("12.50".to_string())],
            vec![None, Some("0.75".to_string())],
        ];
        assert_eq!(
            aligned_table(&schema, &rows),
            "  team  | cost\n\
             --------+-------\n \
             search | 12.50\n        \
             |  0.75\n\
             (2 rows)\n"
        );
        assert_eq!(
            aligned_table(&schema, &[]),
            " team | cost\n------+------\n(0 rows)\n"
        );
    }
}
