//! `GET /metrics` (SPEC §5.2): the engine's numbers in Prometheus' text format.
//!
//! The business metrics are read from the engine at scrape time, from the same summary that
//! `/api/v1/summary` serves, so a scrape and the summary can never disagree: there is one home
//! for every number. A late touch can lower a stage's `entered`, `converted` or `dropped` (it
//! can merge two journeys); the counters then go down with it and
//! `spiral_late_corrections_total` counts the event (see docs/decisions.md).

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{Encoder, Registry, TextEncoder};

use crate::engine::dims::Dimensions;
use crate::engine::{Counters, Engine};
use crate::event::RejectReason;
use crate::funnel::stats::{CONVERSION_BOUNDS_MS, FunnelStats, TURN_BUCKETS};
use crate::summary::Summary;

use super::durable::CheckpointCounters;
use super::state::Shared;

/// Renders every metric: the engine's, the consumer's and the process'.
pub fn render(shared: &Shared, process: &Registry) -> String {
    let mut families = business(shared);
    families.extend(process.gather());
    text(&families)
}

/// Scale-out's metrics (`service::stages`): each owned stage partition's engine under its
/// `partition` label, then the dead letters, the checkpoints and the process.
pub fn render_stages(
    engines: &[(String, EngineNumbers)],
    lag: &BTreeMap<(String, i32), i64>,
    dlq: &super::dlq::DlqCounters,
    checkpoints: &CheckpointCounters,
    process: &Registry,
) -> String {
    let mut families = partition_families(engines);
    let mut m = Families::default();
    lag_metrics(
        &mut m,
        lag.iter()
            .map(|((topic, partition), &lag)| (topic.as_str(), *partition, lag)),
    );
    dlq_metrics(&mut m, dlq);
    checkpoint_metrics(&mut m, checkpoints);
    families.extend(m.0.into_iter().filter(|f| !f.get_metric().is_empty()));
    families.extend(process.gather());
    text(&families)
}

fn text(families: &[MetricFamily]) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(families, &mut out)
        .expect("text encoding into memory cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}

/// A process collector registry (CPU, memory, open files) for the process metrics.
pub fn process_registry() -> Registry {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("a fresh registry takes the process collector");
    registry
}

/// `spiral_kafka_consumer_lag_messages`: (topic, partition, lag) of each partition fetched.
fn lag_metrics<'a>(m: &mut Families, lags: impl Iterator<Item = (&'a str, i32, i64)>) {
    let f = m.family(
        "spiral_kafka_consumer_lag_messages",
        "Messages behind the end of each assigned partition (after the last stored offset).",
        MetricType::GAUGE,
    );
    for (topic, partition, lag) in lags {
        let partition = partition.to_string();
        gauge(
            f,
            &[("topic", topic), ("partition", &partition)],
            lag as f64,
        );
    }
}

fn business(shared: &Shared) -> Vec<MetricFamily> {
    let numbers = EngineNumbers::of(&shared.engine_now());
    let mut m = Families::default();
    engine_families(&mut m, &numbers);
    let status = shared.partitions().status(std::time::Instant::now());
    lag_metrics(
        &mut m,
        status
            .iter()
            .filter_map(|p| Some((p.topic.as_str(), p.partition, p.lag?))),
    );
    m.single(
        "spiral_state_partitions_elsewhere",
        "Partitions this instance has read that another member of its consumer group holds now \
         (one instance per group: above 0, each instance counts part of the stream).",
        MetricType::GAUGE,
        shared.partitions().elsewhere() as f64,
    );
    dlq_metrics(&mut m, &shared.dlq);
    checkpoint_metrics(&mut m, &shared.checkpoints);
    if shared.export_on {
        export_metrics(&mut m, &shared.checkpoints);
    }
    m.0.into_iter()
        .filter(|f| !f.get_metric().is_empty())
        .collect()
}

/// What the engine's metrics are made of, copied out so that the engine lock is held only
/// for the copy.
pub struct EngineNumbers {
    summary: Summary,
    stats: Vec<FunnelStats>,
    counters: Counters,
    pending: usize,
    dims: Dimensions,
}

impl EngineNumbers {
    pub fn of(engine: &Engine) -> EngineNumbers {
        EngineNumbers {
            summary: engine.summary(),
            stats: engine.stats().to_vec(),
            counters: engine.counters().clone(),
            pending: engine.pending(),
            dims: engine.dimensions().clone(),
        }
    }
}

/// The metric families of one engine's numbers (SPEC §5.2).
fn engine_families(m: &mut Families, numbers: &EngineNumbers) {
    let EngineNumbers {
        summary,
        stats,
        counters,
        pending,
        dims,
    } = numbers;
    let pending = *pending;
    stage_metrics(m, summary, stats, dims);
    let e = &summary.events;
    let f = m.family(
        "spiral_events_total",
        "Messages read, by result.",
        MetricType::COUNTER,
    );
    counter(f, &[("result", "accepted")], e.accepted as f64);
    counter(f, &[("result", "duplicate")], e.duplicates as f64);
    counter(f, &[("result", "rejected")], e.rejected.total() as f64);
    let f = m.family(
        "spiral_events_rejected_total",
        "Rejected messages, by reason (SPEC §1).",
        MetricType::COUNTER,
    );
    for reason in RejectReason::ALL {
        counter(
            f,
            &[("reason", reason.as_str())],
            e.rejected.get(reason) as f64,
        );
    }
    m.single(
        "spiral_events_late_total",
        "Touches older than the watermark when read.",
        MetricType::COUNTER,
        e.late as f64,
    );
    m.single(
        "spiral_late_corrections_total",
        "Late touches that changed a stage's numbers.",
        MetricType::COUNTER,
        counters.late_corrections as f64,
    );
    m.single(
        "spiral_identity_pending",
        "Touches waiting for their account.",
        MetricType::GAUGE,
        pending as f64,
    );
    m.single(
        "spiral_identity_conflicts_total",
        "Links that contradict an earlier link of the same id.",
        MetricType::COUNTER,
        e.identity_conflicts as f64,
    );
    m.single(
        "spiral_identity_unresolved_total",
        "Touches given up on after identity.pending_ttl.",
        MetricType::COUNTER,
        e.unresolved as f64,
    );
    if let Some(watermark) = summary.watermark.as_deref() {
        let ms = crate::time::parse_rfc3339(watermark).unwrap_or_default();
        m.single(
            "spiral_watermark_seconds",
            "The event-time watermark, Unix seconds.",
            MetricType::GAUGE,
            ms as f64 / 1000.0,
        );
    }
    let f = m.family(
        "spiral_touchpoint_cost_total",
        "Cost of accepted touches, by channel and campaign.",
        MetricType::COUNTER,
    );
    for (channel, campaign, total) in dims.costs() {
        counter(
            f,
            &[("channel", channel.as_str()), ("campaign", campaign)],
            total,
        );
    }
}

/// Families of several engines, each series labelled with the partition whose engine
/// counted it (scale-out: an instance owns some partitions' engines; sums across instances
/// and partitions are the totals).
pub fn partition_families(engines: &[(String, EngineNumbers)]) -> Vec<MetricFamily> {
    let mut all: Vec<MetricFamily> = Vec::new();
    for (partition, numbers) in engines {
        let mut m = Families::default();
        engine_families(&mut m, numbers);
        for mut family in m.0 {
            for metric in family.mut_metric().iter_mut() {
                let mut labels = metric.take_label();
                labels.extend(label_pairs(&[("partition", partition)]));
                metric.set_label(labels);
            }
            match all.iter_mut().find(|f| f.name() == family.name()) {
                Some(into) => into.mut_metric().extend(family.take_metric()),
                None => all.push(family),
            }
        }
    }
    all.retain(|f| !f.get_metric().is_empty());
    all
}

fn dlq_metrics(m: &mut Families, dlq: &super::dlq::DlqCounters) {
    m.single(
        "spiral_dlq_messages_total",
        "Rejected messages written to the dead-letter topic.",
        MetricType::COUNTER,
        dlq.delivered.load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    m.single(
        "spiral_dlq_retries_total",
        "Dead-letter delivery rounds that had to be retried.",
        MetricType::COUNTER,
        dlq.retries.load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
}

fn checkpoint_metrics(m: &mut Families, c: &CheckpointCounters) {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    let last = c.last_success_ms.load(Ordering::Relaxed);
    if last > 0 {
        m.single(
            "spiral_checkpoint_last_success_timestamp_seconds",
            "When the last durable checkpoint was written (Unix seconds).",
            MetricType::GAUGE,
            last as f64 / 1000.0,
        );
        m.single(
            "spiral_checkpoint_duration_seconds",
            "Time the last durable checkpoint took, snapshot to verified write.",
            MetricType::GAUGE,
            get(&c.last_duration_us) / 1e6,
        );
        m.single(
            "spiral_checkpoint_snapshot_seconds",
            "Time the last checkpoint held the consumer (the engine snapshot).",
            MetricType::GAUGE,
            get(&c.last_snapshot_us) / 1e6,
        );
        m.single(
            "spiral_checkpoint_size_bytes",
            "Size of the last durable checkpoint.",
            MetricType::GAUGE,
            get(&c.last_bytes),
        );
    }
    let f = m.family(
        "spiral_checkpoints_total",
        "Checkpoints attempted, by result.",
        MetricType::COUNTER,
    );
    counter(f, &[("result", "ok")], get(&c.saved));
    counter(f, &[("result", "failed")], get(&c.failed));
    m.single(
        "spiral_checkpoint_restores_total",
        "Starts that resumed the state of a checkpoint.",
        MetricType::COUNTER,
        get(&c.restores),
    );
    m.single(
        "spiral_checkpoint_fallbacks_total",
        "Newer checkpoints passed over at restore because they did not verify.",
        MetricType::COUNTER,
        get(&c.fallbacks),
    );
}

/// The BI export's figures; only while it is on.
fn export_metrics(m: &mut Families, c: &CheckpointCounters) {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    m.single(
        "spiral_export_revision",
        "The last revision of BI files published (0: none yet since start).",
        MetricType::GAUGE,
        get(&c.export_revision),
    );
    m.single(
        "spiral_export_files_total",
        "BI files published.",
        MetricType::COUNTER,
        get(&c.export_files),
    );
    m.single(
        "spiral_export_unpublished_revisions",
        "Revisions whose checkpoint is durable but whose files could not be published (or \
         stage transitions sent) yet.",
        MetricType::GAUGE,
        get(&c.export_unpublished),
    );
    m.single(
        "spiral_transitions_sent_total",
        "Stage-transition messages acknowledged by the broker (kafka.transitions_topic).",
        MetricType::COUNTER,
        get(&c.transitions_sent),
    );
}

fn stage_metrics(m: &mut Families, summary: &Summary, stats: &[FunnelStats], dims: &Dimensions) {
    entered(m, summary, stats, dims);
    let names = [
        (
            "spiral_stage_converted_total",
            "Conversions from stage to the next.",
        ),
        ("spiral_stage_dropped_total", "Drop-offs at stage."),
    ];
    for (i, (name, help)) in names.into_iter().enumerate() {
        let f = m.family(name, help, MetricType::COUNTER);
        for funnel in &summary.funnels {
            let last = funnel.stages.len() - 1;
            for (s, stage) in funnel.stages.iter().enumerate() {
                let labels = [
                    ("funnel", funnel.name.as_str()),
                    ("stage", stage.name.as_str()),
                ];
                match i {
                    0 if s < last => counter(f, &labels, stage.converted as f64),
                    1 if s < last => counter(f, &labels, stage.dropped as f64),
                    _ => {}
                }
            }
        }
    }
    let f = m.family(
        "spiral_stage_open",
        "Journeys open at stage.",
        MetricType::GAUGE,
    );
    for funnel in &summary.funnels {
        let last = funnel.stages.len() - 1;
        for stage in &funnel.stages[..last] {
            gauge(
                f,
                &[("funnel", &funnel.name), ("stage", &stage.name)],
                stage.open as f64,
            );
        }
    }
    let f = m.family(
        "spiral_stage_conversion_seconds",
        "Time to convert from stage to the next.",
        MetricType::HISTOGRAM,
    );
    for (funnel, fs) in summary.funnels.iter().zip(stats) {
        let last = funnel.stages.len() - 1;
        for (stage, st) in funnel.stages[..last].iter().zip(&fs.stages) {
            let mut cumulative = 0;
            let buckets =
                CONVERSION_BOUNDS_MS
                    .iter()
                    .zip(&st.conversion_buckets)
                    .map(|(&bound, &n)| {
                        cumulative += n;
                        (bound as f64 / 1000.0, cumulative)
                    });
            histogram(
                f,
                &[("funnel", &funnel.name), ("stage", &stage.name)],
                buckets.collect(),
                st.converted,
                st.conversion_ms_sum as f64 / 1000.0,
            );
        }
    }
    let f = m.family(
        "spiral_stage_turns",
        "Offline/online turns before entering stage.",
        MetricType::HISTOGRAM,
    );
    for (funnel, fs) in summary.funnels.iter().zip(stats) {
        for (stage, st) in funnel.stages.iter().zip(&fs.stages) {
            let mut cumulative = 0;
            let buckets = (0..TURN_BUCKETS - 1).map(|t| {
                cumulative += st.turns[t];
                (t as f64, cumulative)
            });
            histogram(
                f,
                &[("funnel", &funnel.name), ("stage", &stage.name)],
                buckets.collect(),
                st.entered,
                st.turns_sum as f64,
            );
        }
    }
    let f = m.family(
        "spiral_journeys_started_total",
        "Journeys started.",
        MetricType::COUNTER,
    );
    for funnel in &summary.funnels {
        counter(f, &[("funnel", &funnel.name)], funnel.journeys as f64);
    }
    let f = m.family(
        "spiral_journeys_closed_total",
        "Journeys over, by outcome: won, lost, or expired (timed out or followed by another).",
        MetricType::COUNTER,
    );
    for (funnel, fs) in summary.funnels.iter().zip(stats) {
        for (outcome, n) in [("won", fs.won), ("lost", fs.lost), ("expired", fs.expired)] {
            counter(
                f,
                &[("funnel", &funnel.name), ("outcome", outcome)],
                n as f64,
            );
        }
    }
}

/// `spiral_stage_entered_total` by entering channel, and by the configured dimensions when
/// there are any (every combination that occurred; their sum is the stage's `entered`).
fn entered(m: &mut Families, summary: &Summary, stats: &[FunnelStats], dims: &Dimensions) {
    let f = m.family(
        "spiral_stage_entered_total",
        "Stage entries, by entering channel and breakdown dimensions.",
        MetricType::COUNTER,
    );
    for (funnel, fs) in summary.funnels.iter().zip(stats) {
        let Some(by_dims) = &fs.entered_by_dims else {
            for stage in &funnel.stages {
                let by = &stage.entered_by_channel;
                for (channel, n) in [("online", by.online), ("offline", by.offline)] {
                    let labels = [
                        ("funnel", funnel.name.as_str()),
                        ("stage", stage.name.as_str()),
                        ("channel", channel),
                    ];
                    counter(f, &labels, n as f64);
                }
            }
            continue;
        };
        let mut rows: Vec<_> = by_dims.iter().collect();
        rows.sort();
        for (&(s, online, packed), &n) in rows {
            let stage = &funnel.stages[s as usize].name;
            let channel = if online { "online" } else { "offline" };
            let mut labels = vec![
                ("funnel", funnel.name.as_str()),
                ("stage", stage),
                ("channel", channel),
            ];
            let values = dims.labels(packed);
            for (dim, value) in dims.dimensions().iter().zip(values) {
                labels.push((dim.label(), value));
            }
            counter(f, &labels, n as f64);
        }
    }
}

/// Metric families under construction, in the order they were opened.
#[derive(Default)]
struct Families(Vec<MetricFamily>);

impl Families {
    fn family(&mut self, name: &str, help: &str, kind: MetricType) -> &mut MetricFamily {
        let mut family = MetricFamily::default();
        family.set_name(name.to_string());
        family.set_help(help.to_string());
        family.set_field_type(kind);
        self.0.push(family);
        self.0.last_mut().expect("just pushed")
    }

    fn single(&mut self, name: &str, help: &str, kind: MetricType, value: f64) {
        let f = self.family(name, help, kind);
        match kind {
            MetricType::GAUGE => gauge(f, &[], value),
            _ => counter(f, &[], value),
        }
    }
}

/// Sample builders: one labelled sample appended to a family.
fn counter(family: &mut MetricFamily, labels: &[(&str, &str)], value: f64) {
    let mut counter = Counter::default();
    counter.set_value(value);
    let mut metric = Metric::from_label(label_pairs(labels));
    metric.set_counter(counter);
    family.mut_metric().push(metric);
}

fn gauge(family: &mut MetricFamily, labels: &[(&str, &str)], value: f64) {
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::from_label(label_pairs(labels));
    metric.set_gauge(gauge);
    family.mut_metric().push(metric);
}

fn histogram(
    family: &mut MetricFamily,
    labels: &[(&str, &str)],
    buckets: Vec<(f64, i64)>,
    count: i64,
    sum: f64,
) {
    let mut histogram = Histogram::default();
    histogram.set_bucket(
        buckets
            .into_iter()
            .map(|(bound, cumulative)| {
                let mut b = Bucket::default();
                b.set_upper_bound(bound);
                b.set_cumulative_count(cumulative.max(0) as u64);
                b
            })
            .collect(),
    );
    histogram.set_sample_count(count.max(0) as u64);
    histogram.set_sample_sum(sum);
    let mut metric = Metric::from_label(label_pairs(labels));
    metric.set_histogram(histogram);
    family.mut_metric().push(metric);
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.to_string());
            pair
        })
        .collect()
}
