//! `[state]`: where and how often the live service checkpoints its state (SPEC §6, issue #4).
//!
//! ```toml
//! [state]
//! dir = "/var/lib/spiral"        # default "spiral-state", relative to the working directory
//! # url = "s3://bucket/spiral/prod"   # instead of dir: an object store (s3://, file://, memory://)
//! interval = "30s"               # default 30s
//! keep = 3                       # generations kept, at least 2; default 3
//! # enabled = false              # no checkpoints: state starts empty at every start
//!
//! [state.options]                # object store settings, e.g. for MinIO
//! endpoint = "http://minio:9000"
//! allow_http = "true"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Errors};

#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// `None` when checkpoints are off (`enabled = false`).
    pub location: Option<StateLocation>,
    /// Time between periodic checkpoints (one is also written at revocation and shutdown).
    pub interval: Duration,
    /// Generations kept.
    pub keep: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StateLocation {
    Dir(PathBuf),
    /// An object store URL and its builder options (`[state.options]`).
    Url {
        url: String,
        options: BTreeMap<String, String>,
    },
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            location: Some(StateLocation::Dir(PathBuf::from(DEFAULT_DIR))),
            interval: Duration::from_secs(30),
            keep: 3,
        }
    }
}

pub const DEFAULT_DIR: &str = "spiral-state";

/// The URL schemes `object_store` is built with here.
pub const OBJECT_STORE_SCHEMES: &[&str] = &["s3://", "s3a://", "file://", "memory://"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    enabled: Option<bool>,
    dir: Option<String>,
    url: Option<String>,
    interval: Option<String>,
    keep: Option<i64>,
    #[serde(default)]
    options: BTreeMap<String, String>,
}

impl RawState {
    pub(crate) fn validate(self, errors: &Errors<'_>) -> Result<StateConfig, ConfigError> {
        let interval = errors.duration("state.interval", self.interval.as_deref(), 30_000)?;
        if interval < 100 {
            return Err(errors.at("state.interval", "must be at least 100ms"));
        }
        let keep = match self.keep {
            None => 3,
            Some(n) if (2..=1000).contains(&n) => n as usize,
            Some(n) => {
                return Err(errors.at(
                    "state.keep",
                    format!(
                        "must be between 2 and 1000, got {n} (one bad write must leave a \
                         good generation to fall back on)"
                    ),
                ));
            }
        };
        let location = match (self.enabled.unwrap_or(true), self.dir, self.url) {
            (false, _, _) => None,
            (true, Some(_), Some(_)) => {
                return Err(errors.at("state.url", "set either state.dir or state.url, not both"));
            }
            (true, None, Some(url)) => {
                if !OBJECT_STORE_SCHEMES.iter().any(|s| url.starts_with(s)) {
                    return Err(errors.at(
                        "state.url",
                        format!(
                            "{url:?} is not an object store URL Spiral knows \
                             (s3://bucket/prefix, file:///path, memory:///)"
                        ),
                    ));
                }
                Some(StateLocation::Url {
                    url,
                    options: self.options,
                })
            }
            (true, dir, None) => {
                if !self.options.is_empty() {
                    return Err(errors.at("state.options", "only used with state.url"));
                }
                match dir {
                    Some(d) if d.trim().is_empty() => {
                        return Err(errors.at("state.dir", "must not be empty"));
                    }
                    d => Some(StateLocation::Dir(PathBuf::from(
                        d.as_deref().unwrap_or(DEFAULT_DIR),
                    ))),
                }
            }
        };
        Ok(StateConfig {
            location,
            interval: Duration::from_millis(interval as u64),
            keep,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const FUNNEL: &str =
        "[[funnel]]\nname = \"f\"\nstages = [\"a\", \"b\"]\nconversion_window = \"1d\"\n";

    fn parse(state: &str) -> Result<StateConfig, String> {
        Config::parse(&format!("{state}\n{FUNNEL}"), "s.toml")
            .map(|c| c.service.state)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_to_a_local_directory() {
        let state = parse("").unwrap();
        assert_eq!(state, StateConfig::default());
        assert_eq!(
            state.location,
            Some(StateLocation::Dir("spiral-state".into()))
        );
    }

    #[test]
    fn object_store_with_options() {
        let state = parse(
            "[state]\nurl = \"s3://bucket/spiral\"\ninterval = \"45s\"\nkeep = 5\n\
             [state.options]\nendpoint = \"http://minio:9000\"",
        )
        .unwrap();
        assert_eq!(state.interval, Duration::from_secs(45));
        assert_eq!(state.keep, 5);
        let Some(StateLocation::Url { url, options }) = state.location else {
            panic!("not a url");
        };
        assert_eq!(url, "s3://bucket/spiral");
        assert_eq!(options["endpoint"], "http://minio:9000");
        assert_eq!(parse("[state]\nenabled = false").unwrap().location, None);
    }

    #[test]
    fn problems_name_the_key() {
        let cases = [
            (
                "[state]\ndir = \"a\"\nurl = \"s3://b\"",
                "s.toml: state.url: set either",
            ),
            (
                "[state]\nurl = \"ftp://x\"",
                "s.toml: state.url: \"ftp://x\" is not",
            ),
            ("[state]\nkeep = 1", "s.toml: state.keep: must be between 2"),
            (
                "[state]\ninterval = \"10ms\"",
                "s.toml: state.interval: must be at least",
            ),
            ("[state]\ninterval = \"often\"", "s.toml: state.interval: "),
            (
                "[state]\ndir = \"\"",
                "s.toml: state.dir: must not be empty",
            ),
            (
                "[state.options]\nx = \"y\"",
                "s.toml: state.options: only used with",
            ),
            (
                "[state]\nevery = \"1s\"",
                "s.toml: state.every: unknown field",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap_err();
            assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
        }
    }
}
