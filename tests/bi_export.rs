//! `spiral replay --export` (SPEC §5.3): a backfill's Parquet files, read through the shipped
//! DuckDB views, give the summary's numbers; the same holds with outcomes decided at an
//! earlier `--watermark`, and over files published in many revisions.

mod common;

use std::path::Path;
use std::process::Command;

use common::bi::{assert_files_match, query, replay_checked};
use spiral::summary::Summary;

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/spiral.toml");

fn spiral(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spiral"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn generate(dir: &Path, seed: &str, accounts: &str, events: &str) {
    let out = spiral(
        &[
            "generate",
            "--seed",
            seed,
            "--accounts",
            accounts,
            "--events",
            events,
            "--out",
            "in.jsonl",
        ],
        dir,
    );
    assert!(out.status.success());
}

/// `spiral replay -q` of `in.jsonl` with the example configuration, `extra` arguments first.
fn replay(dir: &Path, summary: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["replay", "-q", "--config", CONFIG, "--summary", summary];
    args.extend_from_slice(extra);
    args.push("in.jsonl");
    spiral(&args, dir)
}

fn summary(path: &Path) -> Summary {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_backfill_gives_the_summary_through_the_shipped_views() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "11", "3000", "40000");
    let out = replay(dir.path(), "s.json", &["--export", "bi"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&dir.path().join("s.json"));
    assert_files_match(&dir.path().join("bi"), &s);

    // Touches: one row per accepted touch; every journey's touches are among them.
    let r = query(
        &dir.path().join("bi"),
        &[
            "SELECT count(*) AS n, count(DISTINCT event_id) AS ids, sum(late::INT) AS late FROM touches",
            "SELECT count(*) AS n FROM journeys, unnest(event_ids) AS u(id) \
             ANTI JOIN touches t ON t.event_id = u.id",
            "SELECT count(*) AS weeks FROM conversion_by_week",
            "SELECT DISTINCT spiral FROM journeys WHERE spiral LIKE 'offline>online>offline%'",
        ],
    );
    let touches = s.events.accepted - s.events.identify;
    assert_eq!(r[0][0]["n"], touches);
    assert_eq!(r[0][0]["late"], s.events.late);
    assert_eq!(r[1][0]["n"], 0, "a journey's touch has no touch row");
    assert!(r[2][0]["weeks"].as_i64().unwrap() > 20);
    assert!(
        !r[3].is_empty(),
        "the spiral pattern shows offline>online>offline journeys"
    );

    // A second backfill into the same directory would mix two runs' revisions: refused.
    let again = replay(dir.path(), "t.json", &["--export", "bi"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("--export bi: already holds files"), "{err}");
}

#[test]
fn outcomes_at_an_earlier_watermark_match_too() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "12", "2000", "20000");
    let out = replay(
        dir.path(),
        "s.json",
        &["--export", "bi", "--watermark", "2026-09-01T00:00:00Z"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&dir.path().join("s.json"));
    assert_eq!(s.watermark.as_deref(), Some("2026-09-01T00:00:00.000Z"));
    assert!(
        s.funnels[0].stages[0].open > 0,
        "some stages are still open then"
    );
    assert_files_match(&dir.path().join("bi"), &s);
}

#[test]
fn files_published_in_many_revisions_give_the_summary() {
    let mut lines = Vec::new();
    spiral::generate::generate(
        &spiral::generate::GenerateOptions {
            seed: 13,
            accounts: 1000,
            events: 16_000,
            ..Default::default()
        },
        &mut lines,
    )
    .unwrap();
    let messages: Vec<String> = String::from_utf8(lines)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let config = std::fs::read_to_string(CONFIG).unwrap();
    // About 12 revisions: late touches and outcomes decided later supersede earlier rows.
    let s = replay_checked(&config, &messages, 1400);
    assert!(s.events.late > 0);
}
