//! The `spiral` command line. Everything it does lives in the library; this file only parses
//! arguments and reports errors.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use spiral::config::Config;
use spiral::generate::{self, GenerateOptions};
use spiral::replay::{self, ReplayOptions};
use spiral::{report, time};

#[derive(Parser)]
#[command(
    name = "spiral",
    version,
    about = "B2B funnel journeys from touchpoint streams"
)]
struct Cli {
    /// Log format on standard error; the level filter comes from RUST_LOG (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The live service: consume Kafka, serve metrics and the summary API (SIGTERM drains).
    Run {
        /// The configuration file (needs a [kafka] section).
        #[arg(long)]
        config: PathBuf,
    },
    /// The live service on generated traffic through an in-process Kafka cluster: no set-up.
    Demo {
        /// Messages to produce.
        #[arg(long, default_value_t = 2_000_000)]
        events: u64,
        #[arg(long, default_value_t = 20_000)]
        accounts: u64,
        /// Messages per second.
        #[arg(long, default_value_t = 20_000)]
        rate: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop by itself after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
        /// Seconds between funnel tables.
        #[arg(long, default_value_t = 5)]
        table_every: u64,
        /// Also write the BI files (Parquet) into this directory, which must hold none yet.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
    },
    /// Run the engine over JSON Lines files and write the summary (SPEC §8).
    Replay {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Where to write the summary JSON.
        #[arg(long)]
        summary: PathBuf,
        /// Where to write rejected lines [default: beside the summary, OUT.rejected.jsonl].
        #[arg(long)]
        rejected: Option<PathBuf>,
        /// Decide outcomes at this watermark (RFC 3339) instead of the newest event time.
        #[arg(long)]
        watermark: Option<String>,
        /// Also write the BI files (Parquet, SPEC §5.3) into this directory, which must hold
        /// none yet: a backfill in the live service's layout. `[export]` settings apply.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        /// Print no funnel table.
        #[arg(long, short)]
        quiet: bool,
        /// JSON Lines inputs, read in order (`-` is standard input).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Validate a configuration file and exit.
    CheckConfig { file: PathBuf },
    /// Write synthetic B2B touchpoint traffic as JSON Lines.
    Generate {
        /// Output file (`-` for standard output).
        #[arg(long, short, default_value = "-")]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 10_000)]
        accounts: u64,
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Share of broken lines, spread over every rejection reason.
        #[arg(long, default_value_t = 0.01)]
        broken_share: f64,
        /// Share of retried (duplicate) lines.
        #[arg(long, default_value_t = 0.02)]
        duplicate_share: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spiral: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { config } => {
            let mut config = Config::load(&config)?;
            config
                .service
                .apply_env(|name| std::env::var(name).ok())
                .map_err(anyhow::Error::msg)?;
            spiral::service::run(&config, Default::default())
        }
        Command::Demo {
            events,
            accounts,
            rate,
            seed,
            seconds,
            table_every,
            export,
        } => spiral::demo::run(&spiral::demo::DemoOptions {
            events,
            accounts,
            rate,
            seed,
            stop_after: seconds.map(std::time::Duration::from_secs),
            table_every: std::time::Duration::from_secs(table_every.max(1)),
            export,
        }),
        Command::Replay {
            config,
            summary,
            rejected,
            watermark,
            export,
            quiet,
            inputs,
        } => {
            spiral::mem::return_freed_memory_promptly();
            let config = Config::load(&config)?;
            let watermark = watermark
                .map(|w| {
                    time::parse_rfc3339(&w).with_context(|| {
                        format!("--watermark: {w:?} is not RFC 3339 with an offset")
                    })
                })
                .transpose()?;
            let options = ReplayOptions {
                inputs,
                summary,
                rejected,
                watermark,
                progress: std::io::stderr().is_terminal(),
                export,
            };
            let (summary, engine) = replay::run(&config, &options)?;
            if !quiet {
                print!("{}", report::funnel_table(&summary));
                let s = engine.state_sizes();
                let mib = |b: usize| b as f64 / (1 << 20) as f64;
                println!(
                    "\nstate: {} accounts, {} touches kept, {} waiting for an account, {} contacts, {} anonymous ids, {} event ids remembered",
                    s.accounts, s.touches, s.pending, s.contacts, s.anonymous_ids, s.dedup_ids
                );
                println!(
                    "tables: {:.1} MiB (ids {:.1}, accounts and touches {:.1}, identity {:.1}, dedup {:.1})",
                    mib(s.bytes.total()),
                    mib(s.bytes.strings),
                    mib(s.bytes.accounts),
                    mib(s.bytes.identity),
                    mib(s.bytes.dedup)
                );
            }
            Ok(())
        }
        Command::CheckConfig { file } => {
            let config = Config::load(&file)?;
            println!(
                "{}: ok ({} funnels, {} touchpoint kinds)",
                file.display(),
                config.funnels.len(),
                config.touchpoints.len()
            );
            Ok(())
        }
        Command::Generate {
            out,
            seed,
            accounts,
            events,
            broken_share,
            duplicate_share,
        } => {
            let options = GenerateOptions {
                seed,
                accounts,
                events,
                broken_share,
                duplicate_share,
                ..GenerateOptions::default()
            };
            let stats = if out.as_os_str() == "-" {
                let stdout = std::io::stdout();
                let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
                generate::generate(&options, &mut w)?
            } else {
                let file = std::fs::File::create(&out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
                generate::generate(&options, &mut w)?
            };
            eprintln!(
                "spiral: wrote {} lines ({} touches, {} identify, {} duplicates, {} broken)",
                stats.lines, stats.touches, stats.identify, stats.duplicates, stats.broken
            );
            Ok(())
        }
    }
}
