//! The live service (`spiral run`): Kafka in, the engine in the middle, Prometheus and a JSON
//! API out.
//!
//! - [`pipeline`]: the consumer thread (poll, apply, dead-letter, store offsets).
//! - [`partitions`]: the per-partition watermark of SPEC §4.
//! - [`dlq`]: the dead-letter producer that never skips a message.
//! - [`durable`], [`recovery`]: checkpoints of the state, and starting from the last good one.
//! - [`transitions`]: the stage-transition topic, fed from each published BI revision.
//! - [`metrics`], [`http`]: what the service shows while it runs.
//!
//! [`Service::start`] starts it inside a Tokio runtime and returns a handle (tests and the
//! demo drive it that way); [`run`] is the command: start, wait for SIGTERM or SIGINT, drain.

pub mod dlq;
pub mod durable;
pub mod http;
pub mod metrics;
pub mod outbox;
pub mod partitions;
pub mod pipeline;
pub mod recovery;
pub mod stages;
pub mod state;
pub mod transitions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::oneshot;

use crate::checkpoint::Storage;
use crate::config::Config;
use crate::engine::Engine;
use crate::event::Decoder;

use dlq::DlqCounters;
use durable::{CheckpointCounters, Durable};
use partitions::Partitions;
use pipeline::{Pipeline, Recovery};
use state::Shared;
use transitions::Transitions;

/// Longest a start may spend reading the dead-letter topic's letters since the checkpoint.
const DLQ_SCAN_TIMEOUT: Duration = Duration::from_secs(120);

/// A running service.
pub struct Service {
    /// What the HTTP surface reads, and how a stop is asked for.
    numbers: Arc<dyn http::Numbers>,
    /// The one engine's state (`None` with `[kafka.stages]`).
    shared: Option<Arc<Shared>>,
    /// Where the HTTP server listens (the configured address, with the port resolved).
    pub addr: SocketAddr,
    consumer_done: oneshot::Receiver<Result<()>>,
    stop_http: oneshot::Sender<()>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown_timeout: Duration,
}

impl Service {
    /// Binds the HTTP address, resumes the last good checkpoint, joins the consumer group and
    /// starts consuming.
    pub async fn start(config: &Config) -> Result<Service> {
        Service::start_with_storage(config, None).await
    }

    /// [`Service::start`] with checkpoints in `storage` instead of the configured location
    /// (when `[state]` is enabled): for embedding, and for tests that inject storage faults.
    pub async fn start_with_storage(
        config: &Config,
        storage: Option<Box<dyn Storage>>,
    ) -> Result<Service> {
        let kafka = config.service.kafka.as_ref().ok_or_else(|| {
            anyhow!("the configuration has no [kafka] section: spiral run needs one")
        })?;
        let listen = config.service.http.listen;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("http.listen: cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        if kafka.stages.is_some() {
            let started = stages::start(config, storage)?;
            let numbers: Arc<dyn http::Numbers> = started.shared;
            return Ok(Service::serve(
                listener,
                numbers,
                None,
                started.done,
                config.service.shutdown_timeout,
            ));
        }
        let counters = CheckpointCounters::default();
        let (engine, partitions, recovery) = match recovery::open(&config.service.state, storage)? {
            None => {
                tracing::warn!(
                    "[state] is disabled: the state starts empty and is not checkpointed"
                );
                let engine = Engine::new(config).map_err(|e| anyhow!(e))?;
                (engine, Partitions::new(kafka.idle_timeout), None)
            }
            Some((checkpoints, next_generation)) => {
                // Blocking reads at start, before anything is served.
                let restored = recovery::restore(&checkpoints, config, &counters)?;
                let from_checkpoint = restored.is_some();
                let (mut engine, positions, dlq_written, ahead, sealed) = match restored {
                    Some(r) => (r.engine, r.positions, r.dlq_written, r.dlq_ahead, r.export),
                    None => (
                        Engine::new(config).map_err(|e| anyhow!(e))?,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        Vec::new(),
                    ),
                };
                let export = config
                    .service
                    .export
                    .as_ref()
                    .map(|settings| {
                        recovery::resume_export(settings, from_checkpoint, &sealed, &mut engine)
                    })
                    .transpose()?;
                let mut already_dead =
                    recovery::dead_letters_since(kafka, &dlq_written, DLQ_SCAN_TIMEOUT)?;
                already_dead.extend(ahead);
                let transitions = kafka
                    .transitions_topic
                    .as_deref()
                    .map(|topic| {
                        let mut client = pipeline::client_config(kafka, false);
                        for (key, value) in &kafka.transitions_producer {
                            client.set(key, value);
                        }
                        Transitions::new(&client, topic)
                    })
                    .transpose()?;
                // The checkpoint's revisions were published above, but their transitions may
                // not all have reached the topic before the stop: they are sent again.
                let waiting = if transitions.is_some() {
                    sealed
                } else {
                    Vec::new()
                };
                let durable = Durable::start(
                    checkpoints,
                    next_generation,
                    config.service.state.interval,
                    export,
                    transitions,
                    waiting,
                )?;
                let partitions = Partitions::new(kafka.idle_timeout).with_positions(positions);
                let recovery = Recovery {
                    durable,
                    dlq_written,
                    already_dead,
                };
                (engine, partitions, Some(recovery))
            }
        };
        let shared = Arc::new(Shared {
            engine: Mutex::new(engine.with_external_watermark()),
            partitions: Mutex::new(partitions),
            dlq: DlqCounters::default(),
            checkpoints: counters,
            export_on: config.service.export.is_some(),
            allowed_lateness: config.pipeline.allowed_lateness,
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        let decoder = Decoder::new(
            config.pipeline.max_event_bytes,
            config.touchpoints.iter().cloned(),
        );
        let timeout = config.service.shutdown_timeout;
        let pipeline = Pipeline::new(shared.clone(), kafka, decoder, timeout, recovery)?;
        let (done_tx, consumer_done) = oneshot::channel();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("spiral-consumer".into())
            .spawn(move || {
                let result = pipeline.run();
                thread_shared.stopped.store(true, Ordering::Relaxed);
                let _ = done_tx.send(result);
            })
            .context("cannot start the consumer thread")?;
        tracing::info!(%addr, topics = ?kafka.topics, group = %kafka.group_id, "spiral is running");
        Ok(Service::serve(
            listener,
            shared.clone(),
            Some(shared),
            consumer_done,
            timeout,
        ))
    }

    /// Serves HTTP beside a started consumer thread.
    fn serve(
        listener: TcpListener,
        numbers: Arc<dyn http::Numbers>,
        shared: Option<Arc<Shared>>,
        consumer_done: oneshot::Receiver<Result<()>>,
        shutdown_timeout: Duration,
    ) -> Service {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (stop_http, stop_rx) = oneshot::channel::<()>();
        let router = http::router(numbers.clone());
        let http = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        Service {
            numbers,
            shared,
            addr,
            consumer_done,
            stop_http,
            http,
            shutdown_timeout,
        }
    }

    /// The one engine's state; `None` with `[kafka.stages]`.
    pub fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.as_ref()
    }

    /// Ready: partitions assigned and polled since.
    pub fn ready(&self) -> bool {
        self.numbers.ready()
    }

    /// Waits until the consumer thread ends by itself (an error: it only ends when asked).
    pub async fn failed(&mut self) -> Result<()> {
        match (&mut self.consumer_done).await {
            Ok(Ok(())) => Err(anyhow!("the consumer stopped unexpectedly")),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(anyhow!("the consumer thread panicked")),
        }
    }

    /// Graceful stop: the consumer finishes the batch in hand, stores and commits its offsets
    /// and flushes the dead-letter producer; then the HTTP server stops. Gives up after
    /// `service.shutdown_timeout`.
    pub async fn stop(self) -> Result<()> {
        self.numbers.ask_stop();
        let consumer = tokio::time::timeout(self.shutdown_timeout, self.consumer_done)
            .await
            .map_err(|_| {
                anyhow!(
                    "the consumer did not drain within service.shutdown_timeout ({:?})",
                    self.shutdown_timeout
                )
            })?;
        let _ = self.stop_http.send(());
        let _ = self.http.await;
        match consumer {
            Ok(result) => result,
            Err(_) => Err(anyhow!("the consumer thread panicked")),
        }
    }
}

/// Work done every so often while serving.
pub type Tick = Box<dyn FnMut(&Shared) + Send>;

/// Extras of a run, for the demo.
#[derive(Default)]
pub struct Hooks {
    /// Runs every so often while serving (the demo's live table).
    pub tick: Option<(Duration, Tick)>,
    /// Stop as if signalled after this long.
    pub stop_after: Option<Duration>,
}

/// `spiral run`: serves until SIGTERM or SIGINT, then drains and exits; a second signal exits
/// at once.
pub fn run(config: &Config, hooks: Hooks) -> Result<()> {
    let Hooks { tick, stop_after } = hooks;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut signals = Signals::new()?;
        let mut service = Service::start(config).await?;
        let shared = service.shared().cloned();
        let ticker = tick.zip(shared).map(|((every, mut tick), shared)| {
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(every);
                interval.tick().await;
                loop {
                    interval.tick().await;
                    let shared = shared.clone();
                    tick = tokio::task::spawn_blocking(move || {
                        tick(&shared);
                        tick
                    })
                    .await
                    .expect("the tick panicked");
                }
            })
        });
        let stop_after = async {
            match stop_after {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            signal = signals.next() => tracing::info!(signal, "stopping: draining the batch in hand and committing offsets"),
            _ = stop_after => tracing::info!("stopping: the demo's time is up"),
            failed = service.failed() => return failed,
        }
        if let Some(ticker) = ticker {
            ticker.abort();
        }
        tokio::select! {
            result = service.stop() => {
                result?;
                tracing::info!("stopped cleanly");
                Ok(())
            }
            signal = signals.next() => {
                tracing::warn!(signal, "second signal: exiting now");
                std::process::exit(130);
            }
        }
    })
}

struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
