//! The Prometheus rules of deploy/prometheus, checked with the real tools: `promtool check
//! rules` and `promtool check config` must be clean and every `promtool test rules` unit test
//! must pass; and, by reading the files: every alert has a summary, a description with numbers
//! and a runbook section that exists, every alert is unit-tested both firing and silent, and the
//! stage order the alerts join on matches config/spiral.toml.

mod ops;

use std::collections::BTreeSet;

use ops::{RULE_FILES, repo, rules, run, str_of, yaml};
use spiral::config::Config;

#[test]
fn promtool_checks_the_rule_files_and_the_scrape_config() {
    let out = run("promtool", &[&["check", "rules"][..], &RULE_FILES].concat());
    assert!(!out.contains("WARNING"), "promtool warns:\n{out}");
    run(
        "promtool",
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
}

#[test]
fn promtool_unit_tests_of_every_alert_pass() {
    let files = test_files();
    let mut args = vec!["test".to_string(), "rules".to_string()];
    args.extend(files.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("promtool", &args);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_has_a_summary_numbers_and_a_runbook_section() {
    let runbook = std::fs::read_to_string(repo("docs/runbook.md")).expect("docs/runbook.md");
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(github_anchor)
        .collect();
    let alerts = alerts();
    assert!(alerts.len() >= 9, "{} alerts", alerts.len());
    for alert in &alerts {
        let name = str_of(alert, "alert");
        let annotations = &alert["annotations"];
        assert!(
            !str_of(annotations, "summary").is_empty(),
            "{name}: summary"
        );
        let description = str_of(annotations, "description");
        // SpiralAbsent is about a series that does not exist: it has no number to give.
        assert!(
            name == "SpiralAbsent"
                || description.contains("$value")
                || description.contains("query"),
            "{name}: the description should carry the numbers: {description}"
        );
        let url = str_of(annotations, "runbook_url");
        let anchor = url.strip_prefix("docs/runbook.md#").unwrap_or_else(|| {
            panic!("{name}: runbook_url {url:?} is not a docs/runbook.md section")
        });
        assert!(
            anchors.contains(anchor),
            "{name}: docs/runbook.md has no section #{anchor} (sections: {anchors:?})"
        );
        assert!(
            str_of(&alert["labels"], "severity").len() > 1,
            "{name}: severity label"
        );
    }
}

#[test]
fn every_alert_is_tested_firing_and_silent() {
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for file in test_files() {
        let tests = yaml(&file);
        for test in tests["tests"].as_sequence().expect("tests") {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = str_of(case, "alertname").to_string();
                let expected = case["exp_alerts"].as_sequence().map_or(0, |s| s.len());
                if expected == 0 {
                    silent.insert(name);
                } else {
                    firing.insert(name);
                }
            }
        }
    }
    for alert in alerts() {
        let name = str_of(&alert, "alert");
        assert!(firing.contains(name), "{name}: no test where it fires");
        assert!(
            silent.contains(name),
            "{name}: no test where it stays silent"
        );
    }
}

/// funnel_stages.yml must give every stage of config/spiral.toml but the first its predecessor,
/// and nothing else.
#[test]
fn stage_order_matches_the_example_configuration() {
    let config = Config::load(&repo("config/spiral.toml")).expect("config/spiral.toml");
    let expected: BTreeSet<(String, String, String)> = config
        .funnels
        .iter()
        .flat_map(|f| {
            f.stages
                .windows(2)
                .map(|w| (f.name.clone(), w[1].clone(), w[0].clone()))
        })
        .collect();
    let actual: BTreeSet<(String, String, String)> = rules("deploy/prometheus/funnel_stages.yml")
        .iter()
        .map(|r| {
            assert_eq!(str_of(r, "record"), "spiral:stage_previous:info");
            assert_eq!(str_of(r, "expr"), "vector(1)");
            let l = &r["labels"];
            (
                str_of(l, "funnel").to_string(),
                str_of(l, "stage").to_string(),
                str_of(l, "previous_stage").to_string(),
            )
        })
        .collect();
    assert_eq!(actual, expected);
}

/// Every recording rule sums by funnel and stage, and every ratio divides summed counters.
#[test]
fn recording_rules_sum_by_funnel_and_stage() {
    for rule in rules("deploy/prometheus/recording_rules.yml") {
        let record = str_of(&rule, "record");
        let expr = str_of(&rule, "expr");
        assert!(record.starts_with("funnel_stage:"), "{record}");
        assert!(
            expr.contains("sum by (funnel, stage) (increase("),
            "{record}: {expr}"
        );
        assert!(!expr.contains("avg"), "{record}: never average: {expr}");
        if record.contains(":ratio") {
            assert_eq!(expr.matches("sum by (funnel, stage)").count(), 2, "{expr}");
        }
    }
}

fn alerts() -> Vec<serde_yaml::Value> {
    rules("deploy/prometheus/alerts.yml")
        .into_iter()
        .filter(|r| r.get("alert").is_some())
        .collect()
}

fn test_files() -> Vec<String> {
    let dir = repo("deploy/prometheus/tests");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/prometheus/tests")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .map(|n| format!("deploy/prometheus/tests/{n}"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

/// GitHub's anchor of a heading: lowercase, spaces to dashes, punctuation dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}
