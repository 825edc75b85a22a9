//! The live service's sections of the configuration file: `[kafka]`, `[http]`, `[metrics]` and
//! `[service]`. SPEC §7 leaves them to the project; like the funnel keys, every key is
//! validated at start and unknown keys are errors.
//!
//! Deploy-time values can come from the environment instead of the file (see
//! [`ServiceConfig::apply_env`]): brokers and credentials differ per environment, the funnels
//! do not.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::export::{ExportConfig, RawExport};
use super::state::{RawState, StateConfig};
use super::{ConfigError, Errors};

/// librdkafka settings that Spiral owns because correctness depends on them: offsets are
/// stored only after the engine applied a message, and the group and brokers come from
/// their own keys. Setting them under `[kafka.*]` is an error rather than a silent override.
pub const OWNED_CLIENT_KEYS: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.offset.store",
    "enable.partition.eof",
];

/// The validated service sections.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// `None` when the file has no `[kafka]` (fine for replay; `spiral run` needs it).
    pub kafka: Option<KafkaConfig>,
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
    /// How long a graceful shutdown may take before the process exits anyway.
    pub shutdown_timeout: Duration,
    /// Checkpoints of the live service's state.
    pub state: StateConfig,
    /// The Parquet files for BI; `None` when off.
    pub export: Option<ExportConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub dlq_topic: String,
    /// Where every stage entry of each published BI revision goes as a JSON message (SPEC
    /// §5.4); needs `[export]`.
    pub transitions_topic: Option<String>,
    /// A partition with no message for this long stops holding the watermark back (SPEC §4).
    pub idle_timeout: Duration,
    /// Most messages applied to the engine under one lock.
    pub poll_batch: usize,
    /// librdkafka settings for every client (security: `security.protocol`, `sasl.*`, `ssl.*`).
    pub client: BTreeMap<String, String>,
    /// librdkafka settings for the consumer only, applied after `client`.
    pub consumer: BTreeMap<String, String>,
    /// librdkafka settings for the producers only (dead letters, transitions), applied after
    /// `client`.
    pub producer: BTreeMap<String, String>,
    /// librdkafka settings for the transition producer only, applied after `producer`.
    pub transitions_producer: BTreeMap<String, String>,
    /// Scale-out over instances (`[kafka.stages]`, docs/durability.md); `None`: one instance
    /// per consumer group, one engine.
    pub stages: Option<StagesConfig>,
}

/// The internal topics of scale-out (`topology`): both must exist before the start.
#[derive(Debug, Clone, PartialEq)]
pub struct StagesConfig {
    /// Every input message forwarded, for stage B; one partition.
    pub events_topic: String,
    /// Resolved touches keyed by account, for stage C; its partition count spreads the
    /// journeys over instances.
    pub touches_topic: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Breakdown dimensions of `spiral_stage_entered_total` and the cost counter.
    pub dimensions: Vec<Dimension>,
    /// Distinct values of a dimension that get their own label; later ones are `other`.
    pub top_n: usize,
}

/// A breakdown dimension: a field of the entering touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    Campaign,
    Source,
    /// `attributes.<name>`.
    Attribute(String),
}

impl Dimension {
    /// The Prometheus label name: `campaign`, `source`, or the attribute's name.
    pub fn label(&self) -> &str {
        match self {
            Dimension::Campaign => "campaign",
            Dimension::Source => "source",
            Dimension::Attribute(name) => name,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKafka {
    brokers: Option<String>,
    group_id: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    dlq_topic: Option<String>,
    transitions_topic: Option<String>,
    idle_timeout: Option<String>,
    poll_batch: Option<i64>,
    #[serde(default)]
    client: BTreeMap<String, toml::Value>,
    #[serde(default)]
    consumer: BTreeMap<String, toml::Value>,
    #[serde(default)]
    producer: BTreeMap<String, toml::Value>,
    #[serde(default)]
    transitions_producer: BTreeMap<String, toml::Value>,
    stages: Option<RawStages>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStages {
    events_topic: Option<String>,
    touches_topic: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    #[serde(default)]
    dimensions: Vec<String>,
    top_n: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServiceSection {
    shutdown_timeout: Option<String>,
}

pub(crate) fn validate(
    kafka: Option<RawKafka>,
    http: RawHttp,
    metrics: RawMetrics,
    service: RawServiceSection,
    state: RawState,
    export: Option<RawExport>,
    errors: &Errors<'_>,
) -> Result<ServiceConfig, ConfigError> {
    let kafka = kafka.map(|k| k.validate(errors)).transpose()?;
    let listen = http.listen.as_deref().unwrap_or("127.0.0.1:9464");
    let listen = listen.parse().map_err(|_| {
        errors.at(
            "http.listen",
            format!("{listen:?} is not an address like \"127.0.0.1:9464\""),
        )
    })?;
    let mut dimensions = Vec::new();
    for (i, name) in metrics.dimensions.iter().enumerate() {
        let dimension = parse_dimension(name)
            .map_err(|problem| errors.at(format!("metrics.dimensions[{i}]"), problem))?;
        if dimensions.contains(&dimension) {
            return Err(errors.at(
                format!("metrics.dimensions[{i}]"),
                format!("{name:?} is listed twice"),
            ));
        }
        dimensions.push(dimension);
    }
    if dimensions.len() > MAX_DIMENSIONS {
        return Err(errors.at(
            "metrics.dimensions",
            format!(
                "at most {MAX_DIMENSIONS} dimensions, got {}",
                dimensions.len()
            ),
        ));
    }
    // A touch keeps its labels in 16 bits (`engine::dims`): more dimensions, fewer values each.
    let most = max_top_n(dimensions.len());
    let top_n = match metrics.top_n {
        None => DEFAULT_TOP_N.min(most),
        Some(n) if (1..=most as i64).contains(&n) => n as usize,
        Some(n) if (1..=253).contains(&n) => {
            return Err(errors.at(
                "metrics.top_n",
                format!(
                    "at most {most} with {} dimensions (a touch keeps its labels in 16 bits), \
                     got {n}",
                    dimensions.len()
                ),
            ));
        }
        Some(n) => {
            return Err(errors.at(
                "metrics.top_n",
                format!("must be between 1 and 253, got {n}"),
            ));
        }
    };
    let shutdown_timeout = errors.duration(
        "service.shutdown_timeout",
        service.shutdown_timeout.as_deref(),
        30_000,
    )?;
    let state = state.validate(errors)?;
    let export = RawExport::validate(export, errors)?;
    if export.is_some() && state.location.is_none() {
        return Err(errors.at(
            "export",
            "needs [state] enabled: files are published in step with checkpoints",
        ));
    }
    if let Some(kafka) = &kafka
        && kafka.transitions_topic.is_some()
        && export.is_none()
    {
        return Err(errors.at(
            "kafka.transitions_topic",
            "needs [export]: the transitions are the stage entries of each published revision",
        ));
    }
    if kafka.as_ref().is_some_and(|k| k.stages.is_some()) {
        if state.location.is_none() {
            return Err(errors.at(
                "kafka.stages",
                "needs [state] enabled: a partition's state moves between instances through \
                 its checkpoints",
            ));
        }
        if export.is_some() {
            return Err(errors.at(
                "kafka.stages",
                "cannot run with [export] yet: each instance holds only some accounts' \
                 journeys, and the BI files are not split by partition (docs/durability.md)",
            ));
        }
    }
    if let Some(kafka) = &kafka
        && state.location.is_some()
    {
        for (section, settings) in [
            ("kafka.client", &kafka.client),
            ("kafka.consumer", &kafka.consumer),
        ] {
            if settings.contains_key("enable.auto.commit") {
                return Err(errors.at(
                    format!("{section}.\"enable.auto.commit\""),
                    "set by Spiral while [state] is enabled: committed offsets follow durable \
                     checkpoints, never lead them",
                ));
            }
        }
    }
    Ok(ServiceConfig {
        kafka,
        http: HttpConfig { listen },
        metrics: MetricsConfig { dimensions, top_n },
        shutdown_timeout: millis(shutdown_timeout),
        state,
        export,
    })
}

/// Most breakdown dimensions: every one multiplies the label sets of the entered counter.
pub const MAX_DIMENSIONS: usize = 4;

/// `metrics.top_n` when not set, if the dimensions allow that many.
const DEFAULT_TOP_N: usize = 20;

/// The largest `metrics.top_n` for this many dimensions: a touch's label codes (`none`,
/// `other` and `top_n` values per dimension) are digits of one 16-bit number, so
/// `(top_n + 2) ^ dimensions` must not pass 2^16: 253 for one or two dimensions, 38 for
/// three, 14 for four. That also bounds the label sets of the entered counter per stage.
pub fn max_top_n(dimensions: usize) -> usize {
    (1..=253)
        .rev()
        .find(|&n: &usize| (n as u64 + 2).pow(dimensions as u32) <= 1 << 16)
        .unwrap_or(1)
}

/// Labels Spiral itself puts on the stage metrics; a dimension may not take one of them.
const RESERVED_LABELS: &[&str] = &["funnel", "stage", "channel", "outcome", "le"];

fn parse_dimension(name: &str) -> Result<Dimension, String> {
    let dimension = match name {
        "campaign" => Dimension::Campaign,
        "source" => Dimension::Source,
        _ => match name.strip_prefix("attributes.") {
            Some(attr) if is_label_name(attr) => Dimension::Attribute(attr.to_string()),
            Some(attr) => {
                return Err(format!(
                    "attribute {attr:?} cannot be a Prometheus label name \
                     (letters, digits and _, not starting with a digit or __)"
                ));
            }
            None => {
                return Err(format!(
                    "{name:?} is not a dimension: use \"campaign\", \"source\" or \
                     \"attributes.NAME\""
                ));
            }
        },
    };
    if RESERVED_LABELS.contains(&dimension.label()) {
        return Err(format!(
            "{name:?} would take the label {:?}, which Spiral already uses",
            dimension.label()
        ));
    }
    Ok(dimension)
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

impl RawKafka {
    fn validate(self, errors: &Errors<'_>) -> Result<KafkaConfig, ConfigError> {
        let required = |value: Option<String>, key: &str| match value {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(errors.at(key, "must not be empty")),
            None => Err(errors.at(key, "missing (required in [kafka])")),
        };
        let brokers = required(self.brokers, "kafka.brokers")?;
        let dlq_topic = required(self.dlq_topic, "kafka.dlq_topic")?;
        let group_id = match self.group_id {
            None => "spiral".to_string(),
            Some(g) if g.is_empty() => return Err(errors.at("kafka.group_id", "must not be empty")),
            Some(g) => g,
        };
        if self.topics.is_empty() {
            return Err(errors.at("kafka.topics", "at least one topic to consume is required"));
        }
        for (i, topic) in self.topics.iter().enumerate() {
            let key = format!("kafka.topics[{i}]");
            if topic.is_empty() {
                return Err(errors.at(key, "must not be empty"));
            }
            if self.topics[..i].contains(topic) {
                return Err(errors.at(key, format!("topic {topic:?} is listed twice")));
            }
            if *topic == dlq_topic {
                return Err(errors.at(
                    key,
                    format!("{topic:?} is also the dead-letter topic: rejects would loop"),
                ));
            }
        }
        if let Some(topic) = &self.transitions_topic {
            let key = "kafka.transitions_topic";
            if topic.trim().is_empty() {
                return Err(errors.at(key, "must not be empty"));
            }
            if *topic == dlq_topic {
                return Err(errors.at(key, format!("{topic:?} is also the dead-letter topic")));
            }
            if self.topics.contains(topic) {
                return Err(errors.at(
                    key,
                    format!("{topic:?} is also an input topic: transitions would be read back"),
                ));
            }
        }
        let idle_timeout =
            errors.duration("kafka.idle_timeout", self.idle_timeout.as_deref(), 30_000)?;
        let poll_batch = match self.poll_batch {
            None => 2000,
            Some(n) if (1..=1_000_000).contains(&n) => n as usize,
            Some(n) => {
                return Err(errors.at(
                    "kafka.poll_batch",
                    format!("must be between 1 and 1000000, got {n}"),
                ));
            }
        };
        let stages = match self.stages {
            None => None,
            Some(raw) => {
                let mut taken = self.topics.clone();
                taken.push(dlq_topic.clone());
                taken.extend(self.transitions_topic.clone());
                Some(raw.validate(&taken, errors)?)
            }
        };
        Ok(KafkaConfig {
            brokers,
            group_id,
            topics: self.topics,
            dlq_topic,
            transitions_topic: self.transitions_topic,
            idle_timeout: millis(idle_timeout),
            poll_batch,
            client: client_settings(self.client, "kafka.client", errors)?,
            consumer: client_settings(self.consumer, "kafka.consumer", errors)?,
            producer: client_settings(self.producer, "kafka.producer", errors)?,
            transitions_producer: client_settings(
                self.transitions_producer,
                "kafka.transitions_producer",
                errors,
            )?,
            stages,
        })
    }
}

impl RawStages {
    fn validate(self, taken: &[String], errors: &Errors<'_>) -> Result<StagesConfig, ConfigError> {
        let mut names = Vec::new();
        for (key, value, default) in [
            (
                "kafka.stages.events_topic",
                self.events_topic,
                "spiral.events",
            ),
            (
                "kafka.stages.touches_topic",
                self.touches_topic,
                "spiral.touches",
            ),
        ] {
            let name = value.unwrap_or_else(|| default.to_string());
            if name.trim().is_empty() {
                return Err(errors.at(key, "must not be empty"));
            }
            if taken.contains(&name) || names.contains(&name) {
                return Err(errors.at(
                    key,
                    format!("{name:?} is already an input, dead-letter or other Spiral topic"),
                ));
            }
            names.push(name);
        }
        let [events_topic, touches_topic] = <[String; 2]>::try_from(names).expect("two names");
        Ok(StagesConfig {
            events_topic,
            touches_topic,
        })
    }
}

/// librdkafka takes every setting as a string; TOML lets people write numbers and booleans.
fn client_settings(
    raw: BTreeMap<String, toml::Value>,
    at: &str,
    errors: &Errors<'_>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut settings = BTreeMap::new();
    for (key, value) in raw {
        let path = format!("{at}.{key:?}");
        if OWNED_CLIENT_KEYS.contains(&key.as_str()) {
            return Err(errors.at(
                path,
                "set by Spiral (brokers and group come from kafka.brokers and kafka.group_id; \
                 offsets are stored only after the engine applied a message)",
            ));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(errors.at(
                    path,
                    format!("a librdkafka setting is a string, number or boolean, got {other}"),
                ));
            }
        };
        settings.insert(key, value);
    }
    Ok(settings)
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

impl ServiceConfig {
    /// Applies deploy-time overrides from the environment (`env` is `std::env::var` in the
    /// binary, a map in tests): `SPIRAL_KAFKA_BROKERS`, `SPIRAL_KAFKA_GROUP_ID`,
    /// `SPIRAL_KAFKA_SASL_USERNAME`, `SPIRAL_KAFKA_SASL_PASSWORD` and `SPIRAL_HTTP_LISTEN`.
    /// Errors name the variable.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        self.apply_http_env(&env)?;
        let Some(kafka) = &mut self.kafka else {
            return Ok(());
        };
        let non_empty = |name: &str| match env(name) {
            Some(v) if v.is_empty() => Err(format!("{name}: must not be empty when set")),
            other => Ok(other),
        };
        if let Some(brokers) = non_empty("SPIRAL_KAFKA_BROKERS")? {
            kafka.brokers = brokers;
        }
        if let Some(group) = non_empty("SPIRAL_KAFKA_GROUP_ID")? {
            kafka.group_id = group;
        }
        if let Some(user) = non_empty("SPIRAL_KAFKA_SASL_USERNAME")? {
            kafka.client.insert("sasl.username".into(), user);
        }
        if let Some(password) = non_empty("SPIRAL_KAFKA_SASL_PASSWORD")? {
            kafka.client.insert("sasl.password".into(), password);
        }
        Ok(())
    }

    /// Applies `SPIRAL_HTTP_LISTEN` alone: the override `spiral demo` takes too, whose brokers
    /// are its own cluster's whatever the environment says (in a container, the HTTP address
    /// must be `0.0.0.0` to be reached from outside).
    pub fn apply_http_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(listen) = env("SPIRAL_HTTP_LISTEN") {
            self.http.listen = listen.parse().map_err(|_| {
                format!("SPIRAL_HTTP_LISTEN: {listen:?} is not an address like \"0.0.0.0:9464\"")
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const FUNNEL: &str = r#"
[[funnel]]
name = "f"
stages = ["a", "b"]
conversion_window = "1d"
"#;

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(&format!("{extra}\n{FUNNEL}"), "s.toml").map_err(|e| e.to_string())
    }

    const KAFKA: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"
topics = ["touchpoints.online", "identity"]
dlq_topic = "spiral.dlq"
"#;

    #[test]
    fn defaults_without_service_sections() {
        let config = parse("").unwrap();
        assert_eq!(config.service.kafka, None);
        assert_eq!(config.service.http.listen.to_string(), "127.0.0.1:9464");
        assert_eq!(config.service.metrics.top_n, 20);
        assert_eq!(config.service.shutdown_timeout, Duration::from_secs(30));
    }

    #[test]
    fn stages_take_their_topics_and_need_state_without_export() {
        let config = parse(&format!("{KAFKA}[kafka.stages]\n")).unwrap();
        let stages = config.service.kafka.unwrap().stages.unwrap();
        assert_eq!(stages.events_topic, "spiral.events");
        assert_eq!(stages.touches_topic, "spiral.touches");
        let error = parse(&format!(
            "{KAFKA}[kafka.stages]\nevents_topic = \"identity\"\n"
        ))
        .unwrap_err();
        assert!(
            error.contains("kafka.stages.events_topic: \"identity\" is already"),
            "{error}"
        );
        let error = parse(&format!(
            "{KAFKA}[kafka.stages]\nevents_topic = \"x\"\ntouches_topic = \"x\"\n"
        ))
        .unwrap_err();
        assert!(error.contains("kafka.stages.touches_topic"), "{error}");
        let error = parse(&format!(
            "{KAFKA}[kafka.stages]\n[state]\nenabled = false\n"
        ))
        .unwrap_err();
        assert!(
            error.contains("kafka.stages: needs [state] enabled"),
            "{error}"
        );
        let error = parse(&format!("{KAFKA}[kafka.stages]\n[export]\ndir = \"bi\"\n")).unwrap_err();
        assert!(
            error.contains("kafka.stages: cannot run with [export] yet"),
            "{error}"
        );
        let error = parse(&format!("{KAFKA}[kafka.stages]\nevent_topic = \"x\"\n")).unwrap_err();
        assert!(error.contains("event_topic"), "{error}");
    }

    #[test]
    fn kafka_section_with_client_settings() {
        let config = parse(&format!(
            "{KAFKA}idle_timeout = \"5s\"\n[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n\
             [kafka.consumer]\n\"fetch.max.bytes\" = 1048576\n\"check.crcs\" = true\n"
        ))
        .unwrap();
        let kafka = config.service.kafka.unwrap();
        assert_eq!(kafka.group_id, "spiral");
        assert_eq!(kafka.idle_timeout, Duration::from_secs(5));
        assert_eq!(kafka.client["security.protocol"], "SASL_SSL");
        assert_eq!(kafka.consumer["fetch.max.bytes"], "1048576");
        assert_eq!(kafka.consumer["check.crcs"], "true");
    }

    #[test]
    fn problems_name_file_and_key() {
        let cases = [
            (
                "[kafka]\ntopics = [\"t\"]\ndlq_topic = \"d\"",
                "s.toml: kafka.brokers: missing",
            ),
            (
                "[kafka]\nbrokers = \"b\"\ntopics = []\ndlq_topic = \"d\"",
                "s.toml: kafka.topics: at least one topic",
            ),
            (
                "[kafka]\nbrokers = \"b\"\ntopics = [\"t\"]\ndlq_topic = \"t\"",
                "s.toml: kafka.topics[0]: \"t\" is also the dead-letter topic",
            ),
            (
                &format!("{KAFKA}[kafka.consumer]\n\"enable.auto.offset.store\" = true"),
                "s.toml: kafka.consumer.\"enable.auto.offset.store\": set by Spiral",
            ),
            (
                &format!("{KAFKA}brokerz = 1"),
                "s.toml: kafka.brokerz: unknown field",
            ),
            (
                &format!("{KAFKA}transitions_topic = \"spiral.transitions\""),
                "s.toml: kafka.transitions_topic: needs [export]",
            ),
            (
                &format!("{KAFKA}transitions_topic = \"identity\"\n[export]\n"),
                "s.toml: kafka.transitions_topic: \"identity\" is also an input topic",
            ),
            (
                &format!("{KAFKA}transitions_topic = \"spiral.dlq\"\n[export]\n"),
                "s.toml: kafka.transitions_topic: \"spiral.dlq\" is also the dead-letter",
            ),
            (
                "[http]\nlisten = \"nowhere\"",
                "s.toml: http.listen: \"nowhere\" is not an address",
            ),
            (
                "[metrics]\ndimensions = [\"region\"]",
                "s.toml: metrics.dimensions[0]: \"region\" is not a dimension",
            ),
            (
                "[metrics]\ndimensions = [\"attributes.le\"]",
                "s.toml: metrics.dimensions[0]: \"attributes.le\" would take the label \"le\"",
            ),
            (
                "[metrics]\ndimensions = [\"campaign\", \"source\", \"attributes.a\"]\ntop_n = 39",
                "s.toml: metrics.top_n: at most 38 with 3 dimensions (a touch keeps its labels in \
                 16 bits), got 39",
            ),
            (
                "[metrics]\ntop_n = 254",
                "s.toml: metrics.top_n: must be between 1 and 253, got 254",
            ),
            (
                "[service]\nshutdown_timeout = \"soon\"",
                "s.toml: service.shutdown_timeout: ",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap_err();
            assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn top_n_shrinks_with_the_dimensions_to_fit_a_touch() {
        assert_eq!(
            (0..=4).map(max_top_n).collect::<Vec<_>>(),
            [253, 253, 253, 38, 14]
        );
        let four = "[metrics]\ndimensions = [\"campaign\", \"source\", \"attributes.a\", \"attributes.b\"]";
        // The default of 20 gives way to what four dimensions allow; a value set is checked.
        assert_eq!(parse(four).unwrap().service.metrics.top_n, 14);
        assert_eq!(
            parse(&format!("{four}\ntop_n = 14"))
                .unwrap()
                .service
                .metrics
                .top_n,
            14
        );
        assert!(parse(&format!("{four}\ntop_n = 15")).is_err());
        let two = "[metrics]\ndimensions = [\"campaign\", \"source\"]\ntop_n = 253";
        assert_eq!(parse(two).unwrap().service.metrics.top_n, 253);
    }

    #[test]
    fn environment_overrides_deploy_values() {
        let mut service = parse(KAFKA).unwrap().service;
        let env = |name: &str| match name {
            "SPIRAL_KAFKA_BROKERS" => Some("kafka-0:9093".to_string()),
            "SPIRAL_KAFKA_SASL_PASSWORD" => Some("s3cret".to_string()),
            "SPIRAL_HTTP_LISTEN" => Some("0.0.0.0:9000".to_string()),
            _ => None,
        };
        service.apply_env(env).unwrap();
        let kafka = service.kafka.as_ref().unwrap();
        assert_eq!(kafka.brokers, "kafka-0:9093");
        assert_eq!(kafka.client["sasl.password"], "s3cret");
        assert_eq!(service.http.listen.to_string(), "0.0.0.0:9000");
        let bad = service.apply_env(|n| (n == "SPIRAL_HTTP_LISTEN").then(|| "x".to_string()));
        assert!(bad.unwrap_err().starts_with("SPIRAL_HTTP_LISTEN: \"x\""));
    }

    #[test]
    fn the_demo_takes_only_the_http_address_from_the_environment() {
        let mut service = parse(KAFKA).unwrap().service;
        let before = service.kafka.as_ref().unwrap().clone();
        let env = |name: &str| match name {
            "SPIRAL_HTTP_LISTEN" => Some("127.0.0.1:0".to_string()),
            _ => Some("elsewhere".to_string()),
        };
        service.apply_http_env(env).unwrap();
        assert_eq!(service.http.listen.to_string(), "127.0.0.1:0");
        let kafka = service.kafka.as_ref().unwrap();
        assert_eq!(kafka.brokers, before.brokers);
        assert_eq!(kafka.group_id, before.group_id);
        assert_eq!(kafka.client, before.client);
    }
}
