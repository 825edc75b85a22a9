//! Helpers for the operations-pack tests (`ops_*.rs`): paths in the checkout, running a tool
//! and reading YAML.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A path in the checkout.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs a tool to completion; panics with its output unless it exits 0. Returns stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(repo(""))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): ./scripts/deps.sh installs it (Debian packages)")
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} {} failed ({}):\n{stdout}\n{stderr}",
        args.join(" "),
        output.status
    );
    stdout
}

/// A YAML file of the checkout.
pub fn yaml(path: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every rule of a Prometheus rule file, across its groups.
pub fn rules(path: &str) -> Vec<serde_yaml::Value> {
    let file = yaml(path);
    file["groups"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{path}: no groups"))
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .collect()
}

pub fn str_of<'a>(value: &'a serde_yaml::Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// The rule files of deploy/prometheus, in the order Prometheus should load them.
pub const RULE_FILES: [&str; 3] = [
    "deploy/prometheus/recording_rules.yml",
    "deploy/prometheus/funnel_stages.yml",
    "deploy/prometheus/alerts.yml",
];
