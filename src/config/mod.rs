//! The configuration file (SPEC §7): TOML in, validated typed settings out.
//!
//! Reading happens in two steps, as Vector and Quickwit do it: serde structs that mirror the
//! file (`deny_unknown_fields`, so a typo is an error rather than a silently ignored key), then
//! [`RawConfig::validate`] which turns them into typed values. Every problem is reported as
//! `file: key: problem`, e.g. `config/spiral.toml: funnel[1].conversion_windows.foo: not a
//! stage of funnel "expansion"`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::event::Channel;
use crate::time::{Millis, parse_duration};

mod export;
mod service;
mod state;

pub use export::ExportConfig;
pub use service::{
    Dimension, HttpConfig, KafkaConfig, MAX_DIMENSIONS, MetricsConfig, ServiceConfig, StagesConfig,
    max_top_n,
};
pub use state::{StateConfig, StateLocation};

/// Most stages a funnel may have (SPEC §3).
pub const MAX_STAGES: usize = 16;

/// A configuration problem, already phrased for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// Dotted path of the offending key (`funnel[1].rules.web_visit`); empty for the whole file.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.problem)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub pipeline: PipelineConfig,
    pub identity: IdentityConfig,
    /// Default channel of each touchpoint kind, in file order.
    pub touchpoints: Vec<(String, Channel)>,
    pub funnels: Vec<FunnelConfig>,
    /// The live service's sections: `[kafka]`, `[http]`, `[metrics]`, `[service]`.
    pub service: ServiceConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    pub allowed_lateness: Millis,
    pub dedup_window: Millis,
    pub max_event_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdentityConfig {
    pub pending_ttl: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunnelConfig {
    pub name: String,
    pub stages: Vec<String>,
    /// Conversion window of each stage, indexed like `stages`; the last entry is unused.
    pub windows: Vec<Millis>,
    pub journey_timeout: Millis,
    pub lost_touchpoints: Vec<String>,
    /// Touchpoint kind → stage index.
    pub rules: Vec<(String, usize)>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            problem: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, &file)
    }

    /// Parses and validates configuration text; `file` only labels error messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        RawConfig::parse(text, file)?.validate(file)
    }
}

/// The file as written. Field names are the keys of SPEC §7.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pipeline: RawPipeline,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    touchpoints: BTreeMap<String, String>,
    #[serde(default, rename = "funnel")]
    funnels: Vec<RawFunnel>,
    kafka: Option<service::RawKafka>,
    #[serde(default)]
    http: service::RawHttp,
    #[serde(default)]
    metrics: service::RawMetrics,
    #[serde(default)]
    service: service::RawServiceSection,
    #[serde(default)]
    state: state::RawState,
    export: Option<export::RawExport>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    allowed_lateness: Option<String>,
    dedup_window: Option<String>,
    max_event_bytes: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    pending_ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunnel {
    name: String,
    stages: Vec<String>,
    conversion_window: String,
    journey_timeout: Option<String>,
    #[serde(default)]
    lost_touchpoints: Vec<String>,
    #[serde(default)]
    conversion_windows: BTreeMap<String, String>,
    #[serde(default)]
    rules: BTreeMap<String, String>,
}

/// Collects `file: key: problem` errors with the file name filled in.
pub(crate) struct Errors<'a> {
    file: &'a str,
}

impl Errors<'_> {
    pub(crate) fn at(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn duration(
        &self,
        key: &str,
        value: Option<&str>,
        default: Millis,
    ) -> Result<Millis, ConfigError> {
        match value {
            None => Ok(default),
            Some(text) => parse_duration(text).map_err(|problem| self.at(key, problem)),
        }
    }
}

impl RawConfig {
    pub fn parse(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
        let errors = Errors { file };
        let de =
            toml::de::Deserializer::parse(text).map_err(|e| syntax_error(&errors, text, &e))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            errors.at(
                if key == "." { String::new() } else { key },
                inner.message().to_string(),
            )
        })
    }

    /// Turns the file into typed settings, or names the first problem.
    pub fn validate(self, file: &str) -> Result<Config, ConfigError> {
        let errors = Errors { file };
        let day = 86_400_000;
        let pipeline = PipelineConfig {
            allowed_lateness: errors.duration(
                "pipeline.allowed_lateness",
                self.pipeline.allowed_lateness.as_deref(),
                day,
            )?,
            dedup_window: errors.duration(
                "pipeline.dedup_window",
                self.pipeline.dedup_window.as_deref(),
                30 * day,
            )?,
            max_event_bytes: match self.pipeline.max_event_bytes {
                None => 65_536,
                Some(n) if (1..=64 * 1024 * 1024).contains(&n) => n as usize,
                Some(n) => {
                    return Err(errors.at(
                        "pipeline.max_event_bytes",
                        format!("must be between 1 and 67108864 (64 MiB), got {n}"),
                    ));
                }
            },
        };
        let identity = IdentityConfig {
            pending_ttl: errors.duration(
                "identity.pending_ttl",
                self.identity.pending_ttl.as_deref(),
                30 * day,
            )?,
        };
        let mut touchpoints = Vec::with_capacity(self.touchpoints.len());
        for (kind, channel) in self.touchpoints {
            let Some(channel) = Channel::parse(&channel) else {
                return Err(errors.at(
                    format!("touchpoints.{kind}"),
                    format!("channel must be \"online\" or \"offline\", got {channel:?}"),
                ));
            };
            touchpoints.push((kind, channel));
        }
        if self.funnels.is_empty() {
            return Err(errors.at("funnel", "at least one [[funnel]] is required"));
        }
        let mut names = HashSet::new();
        let mut funnels = Vec::with_capacity(self.funnels.len());
        for (i, raw) in self.funnels.into_iter().enumerate() {
            let funnel = raw.validate(&errors, &format!("funnel[{i}]"))?;
            if !names.insert(funnel.name.clone()) {
                return Err(errors.at(
                    format!("funnel[{i}].name"),
                    format!("funnel {:?} is defined twice", funnel.name),
                ));
            }
            funnels.push(funnel);
        }
        let service = service::validate(
            self.kafka,
            self.http,
            self.metrics,
            self.service,
            self.state,
            self.export,
            &errors,
        )?;
        Ok(Config {
            pipeline,
            identity,
            touchpoints,
            funnels,
            service,
        })
    }
}

impl RawFunnel {
    fn validate(self, errors: &Errors<'_>, at: &str) -> Result<FunnelConfig, ConfigError> {
        let name = self.name;
        if name.trim().is_empty() {
            return Err(errors.at(format!("{at}.name"), "must not be empty"));
        }
        let stages = self.stages;
        if !(2..=MAX_STAGES).contains(&stages.len()) {
            return Err(errors.at(
                format!("{at}.stages"),
                format!(
                    "a funnel has 2 to {MAX_STAGES} stages, got {}",
                    stages.len()
                ),
            ));
        }
        for (j, stage) in stages.iter().enumerate() {
            let key = format!("{at}.stages[{j}]");
            if stage.is_empty() {
                return Err(errors.at(key, "a stage name must not be empty"));
            }
            if stage == "lost" {
                return Err(errors.at(
                    key,
                    "\"lost\" is reserved for lost events and cannot be a stage",
                ));
            }
            if stages[..j].contains(stage) {
                return Err(errors.at(key, format!("stage {stage:?} is listed twice")));
            }
        }
        let stage_index = |s: &str| stages.iter().position(|x| x == s);
        let default_window = errors.duration(
            &format!("{at}.conversion_window"),
            Some(&self.conversion_window),
            0,
        )?;
        let mut windows = vec![default_window; stages.len()];
        for (stage, window) in &self.conversion_windows {
            let key = format!("{at}.conversion_windows.{stage}");
            match stage_index(stage) {
                None => return Err(errors.at(key, format!("not a stage of funnel {name:?}"))),
                Some(j) if j + 1 == stages.len() => {
                    return Err(errors.at(key, "the last stage has no conversion window"));
                }
                Some(j) => windows[j] = errors.duration(&key, Some(window), 0)?,
            }
        }
        let journey_timeout = errors.duration(
            &format!("{at}.journey_timeout"),
            self.journey_timeout.as_deref(),
            365 * 86_400_000,
        )?;
        let mut rules = Vec::with_capacity(self.rules.len());
        for (touchpoint, stage) in self.rules {
            let Some(j) = stage_index(&stage) else {
                return Err(errors.at(
                    format!("{at}.rules.{touchpoint}"),
                    format!("{stage:?} is not a stage of funnel {name:?}"),
                ));
            };
            rules.push((touchpoint, j));
        }
        for (j, touchpoint) in self.lost_touchpoints.iter().enumerate() {
            if touchpoint.is_empty() {
                return Err(errors.at(format!("{at}.lost_touchpoints[{j}]"), "must not be empty"));
            }
        }
        Ok(FunnelConfig {
            name,
            stages,
            windows,
            journey_timeout,
            lost_touchpoints: self.lost_touchpoints,
            rules,
        })
    }
}

/// A TOML syntax error, located by line and column.
fn syntax_error(errors: &Errors<'_>, text: &str, e: &toml::de::Error) -> ConfigError {
    let problem = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message().trim())
        }
        None => e.message().trim().to_string(),
    };
    errors.at("", problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../config/spiral.toml");

    fn err(text: &str) -> String {
        Config::parse(text, "t.toml").unwrap_err().to_string()
    }

    const MINIMAL: &str = r#"
[[funnel]]
name = "f"
stages = ["a", "b"]
conversion_window = "1d"
"#;

    #[test]
    fn example_config_is_valid() {
        let config = Config::parse(EXAMPLE, "config/spiral.toml").unwrap();
        assert_eq!(config.funnels.len(), 2);
        let nb = &config.funnels[0];
        assert_eq!(nb.name, "new_business");
        assert_eq!(nb.windows[0], 90 * 86_400_000);
        assert_eq!(nb.windows[4], 180 * 86_400_000);
        assert_eq!(config.pipeline.allowed_lateness, 2 * 86_400_000);
    }

    #[test]
    fn defaults_apply_when_keys_are_absent() {
        let config = Config::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(config.pipeline.allowed_lateness, 86_400_000);
        assert_eq!(config.pipeline.dedup_window, 30 * 86_400_000);
        assert_eq!(config.pipeline.max_event_bytes, 65_536);
        assert_eq!(config.identity.pending_ttl, 30 * 86_400_000);
        assert_eq!(config.funnels[0].journey_timeout, 365 * 86_400_000);
    }

    #[test]
    fn unknown_window_stage_names_file_key_and_funnel() {
        let text = EXAMPLE.replace("customer = \"60d\"", "foo = \"60d\"");
        assert_eq!(
            err(&text),
            "t.toml: funnel[1].conversion_windows.foo: not a stage of funnel \"expansion\""
        );
    }

    #[test]
    fn unknown_key_is_an_error_with_its_path() {
        let text = MINIMAL.replace("name = \"f\"", "name = \"f\"\ncolour = \"red\"");
        let e = err(&text);
        assert!(
            e.starts_with("t.toml: funnel[0].colour: unknown field `colour`"),
            "{e}"
        );
        let e = err(&format!("[pipeline]\nlateness = \"1d\"\n{MINIMAL}"));
        assert!(
            e.starts_with("t.toml: pipeline.lateness: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let e = err(&format!(
            "[pipeline]\nallowed_lateness = \"2 days\"\n{MINIMAL}"
        ));
        assert!(e.starts_with("t.toml: pipeline.allowed_lateness: "), "{e}");
        let e = err(&format!("[touchpoints]\nweb = \"web\"\n{MINIMAL}"));
        assert_eq!(
            e,
            "t.toml: touchpoints.web: channel must be \"online\" or \"offline\", got \"web\""
        );
        let e = err(&MINIMAL.replace("[\"a\", \"b\"]", "[\"a\", \"lost\"]"));
        assert!(
            e.starts_with("t.toml: funnel[0].stages[1]: \"lost\" is reserved"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("[\"a\", \"b\"]", "[\"a\"]"));
        assert!(
            e.starts_with("t.toml: funnel[0].stages: a funnel has 2 to 16 stages"),
            "{e}"
        );
        let e = err(&format!("{MINIMAL}[funnel.rules]\nweb = \"c\"\n"));
        assert_eq!(
            e,
            "t.toml: funnel[0].rules.web: \"c\" is not a stage of funnel \"f\""
        );
        let e = err(&format!(
            "{MINIMAL}[funnel.conversion_windows]\nb = \"1d\"\n"
        ));
        assert_eq!(
            e,
            "t.toml: funnel[0].conversion_windows.b: the last stage has no conversion window"
        );
        let e = err(&format!("{MINIMAL}{MINIMAL}"));
        assert_eq!(e, "t.toml: funnel[1].name: funnel \"f\" is defined twice");
        let e = err(&MINIMAL.replace("conversion_window = \"1d\"\n", ""));
        assert!(
            e.starts_with("t.toml: funnel[0]: missing field `conversion_window`"),
            "{e}"
        );
        assert_eq!(
            err(""),
            "t.toml: funnel: at least one [[funnel]] is required"
        );
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let e = err("[pipeline\n");
        assert!(e.starts_with("t.toml: line 1, column "), "{e}");
    }
}
