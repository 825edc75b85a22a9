//! `[export]`: the Parquet files for BI (SPEC §5.3, issue #5).
//!
//! ```toml
//! [export]
//! dir = "/var/lib/spiral/export"   # default "spiral-export", relative to the working directory
//! # url = "s3://bucket/spiral/bi"  # publish into an object store instead; dir is then only
//! #                                # where files are written before they are uploaded
//! row_group_rows = 1048576         # rows per Parquet row group; default 1 Mi
//! max_file_bytes = 268435456       # a file rolls over past this size; default 256 MiB
//! memory_budget_bytes = 67108864   # rows, batches, open files and row groups (a quarter each); default 64 MiB
//! # enabled = false                # the section without this line turns the export on
//!
//! [export.options]                 # object store settings, e.g. for MinIO (as [state.options])
//! endpoint = "http://minio:9000"
//! ```
//!
//! The live service publishes files with its checkpoints, so the export needs `[state]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Errors};

#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// Where files are written, staged and (without `url`) published.
    pub dir: PathBuf,
    /// An object store the files are staged in and published to instead, with its options.
    pub url: Option<String>,
    pub options: BTreeMap<String, String>,
    pub row_group_rows: usize,
    pub max_file_bytes: u64,
    pub memory_budget_bytes: usize,
}

pub const DEFAULT_EXPORT_DIR: &str = "spiral-export";

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            dir: PathBuf::from(DEFAULT_EXPORT_DIR),
            url: None,
            options: BTreeMap::new(),
            row_group_rows: 1 << 20,
            max_file_bytes: 256 << 20,
            memory_budget_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExport {
    enabled: Option<bool>,
    dir: Option<String>,
    url: Option<String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    row_group_rows: Option<i64>,
    max_file_bytes: Option<i64>,
    memory_budget_bytes: Option<i64>,
}

impl RawExport {
    /// `None` when there is no `[export]` section or it says `enabled = false`.
    pub(crate) fn validate(
        raw: Option<RawExport>,
        errors: &Errors<'_>,
    ) -> Result<Option<ExportConfig>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let defaults = ExportConfig::default();
        let range = |key: &str, value: Option<i64>, min: i64, max: i64, default: u64| match value {
            None => Ok(default),
            Some(n) if (min..=max).contains(&n) => Ok(n as u64),
            Some(n) => Err(errors.at(
                format!("export.{key}"),
                format!("must be between {min} and {max}, got {n}"),
            )),
        };
        let row_group_rows = range(
            "row_group_rows",
            raw.row_group_rows,
            1024,
            1 << 26,
            defaults.row_group_rows as u64,
        )?;
        let max_file_bytes = range(
            "max_file_bytes",
            raw.max_file_bytes,
            1 << 20,
            1 << 40,
            defaults.max_file_bytes,
        )?;
        let memory_budget_bytes = range(
            "memory_budget_bytes",
            raw.memory_budget_bytes,
            1 << 20,
            1 << 40,
            defaults.memory_budget_bytes as u64,
        )?;
        let dir = match raw.dir {
            Some(d) if d.trim().is_empty() => {
                return Err(errors.at("export.dir", "must not be empty"));
            }
            d => PathBuf::from(d.as_deref().unwrap_or(DEFAULT_EXPORT_DIR)),
        };
        if let Some(url) = &raw.url
            && !crate::config::state::OBJECT_STORE_SCHEMES
                .iter()
                .any(|s| url.starts_with(s))
        {
            return Err(errors.at(
                "export.url",
                format!(
                    "{url:?} is not an object store URL Spiral knows \
                     (s3://bucket/prefix, file:///path, memory:///)"
                ),
            ));
        }
        if raw.url.is_none() && !raw.options.is_empty() {
            return Err(errors.at("export.options", "only used with export.url"));
        }
        if !raw.enabled.unwrap_or(true) {
            return Ok(None);
        }
        Ok(Some(ExportConfig {
            dir,
            url: raw.url,
            options: raw.options,
            row_group_rows: row_group_rows as usize,
            max_file_bytes,
            memory_budget_bytes: memory_budget_bytes as usize,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const FUNNEL: &str =
        "[[funnel]]\nname = \"f\"\nstages = [\"a\", \"b\"]\nconversion_window = \"1d\"\n";

    fn parse(text: &str) -> Result<Option<ExportConfig>, String> {
        Config::parse(&format!("{text}\n{FUNNEL}"), "e.toml")
            .map(|c| c.service.export)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn off_without_the_section_and_defaults_with_it() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("[export]").unwrap(), Some(ExportConfig::default()));
        assert_eq!(parse("[export]\nenabled = false").unwrap(), None);
        let e = parse("[export]\ndir = \"x\"\nrow_group_rows = 4096")
            .unwrap()
            .unwrap();
        assert_eq!((e.dir, e.row_group_rows), (PathBuf::from("x"), 4096));
    }

    #[test]
    fn problems_name_the_key() {
        let cases = [
            (
                "[export]\ndir = \" \"",
                "e.toml: export.dir: must not be empty",
            ),
            (
                "[export]\nrow_group_rows = 10",
                "e.toml: export.row_group_rows: must be between",
            ),
            (
                "[export]\nmax_file_bytes = 0",
                "e.toml: export.max_file_bytes: must be between",
            ),
            ("[export]\nrows = 1", "e.toml: export.rows: unknown field"),
            (
                "[export]\nurl = \"ftp://x\"",
                "e.toml: export.url: \"ftp://x\" is not",
            ),
            (
                "[export.options]\na = \"b\"",
                "e.toml: export.options: only used with",
            ),
            (
                "[export]\n[state]\nenabled = false",
                "e.toml: export: needs [state]",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap_err();
            assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
        }
    }
}
