//! Cross-check against `tools/oracle/oracle.py`, an independent Python implementation of the
//! SPEC written from the SPEC alone (stdlib only; the machine's `python3`). Every summary
//! number must be equal on generated traffic, on stressed configs, at a given watermark, and
//! on random small streams.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Command {
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replays `input` with both implementations and asserts equal summaries.
fn compare(config: &Path, input: &Path, extra: &[&str], dir: &Path, tag: &str) {
    let ours = dir.join(format!("{tag}-spiral.json"));
    let theirs = dir.join(format!("{tag}-oracle.json"));
    run(Command::new(env!("CARGO_BIN_EXE_spiral"))
        .args(["replay", "-q", "--config"])
        .arg(config)
        .arg("--summary")
        .arg(&ours)
        .args(extra)
        .arg(input));
    run(python()
        .arg(root().join("tools/oracle/oracle.py"))
        .arg("--config")
        .arg(config)
        .arg("--summary")
        .arg(&theirs)
        .args(extra)
        .arg(input));
    let read =
        |p: &Path| serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap();
    assert_eq!(
        read(&ours),
        read(&theirs),
        "{tag}: spiral and the oracle disagree ({} vs {})",
        ours.display(),
        theirs.display()
    );
}

#[test]
fn generated_traffic_matches_the_independent_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("traffic.jsonl");
    run(Command::new(env!("CARGO_BIN_EXE_spiral"))
        .args([
            "generate",
            "--seed",
            "11",
            "--accounts",
            "1500",
            "--events",
            "30000",
            "--out",
        ])
        .arg(&input));
    let example = root().join("config/spiral.toml");
    compare(&example, &input, &[], dir.path(), "example");
    compare(
        &example,
        &input,
        &["--watermark", "2026-03-01T00:00:00Z"],
        dir.path(),
        "watermark",
    );

    // No lateness, short dedup memory and ttl: late data, expiry and forgotten ids everywhere.
    let hasty = dir.path().join("hasty.toml");
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("allowed_lateness = \"2d\"", "allowed_lateness = \"0s\"")
        .replace("dedup_window = \"30d\"", "dedup_window = \"1d\"")
        .replace("pending_ttl = \"30d\"", "pending_ttl = \"3d\"");
    std::fs::write(&hasty, text).unwrap();
    compare(&hasty, &input, &[], dir.path(), "hasty");
}

#[test]
fn random_small_streams_match_the_independent_oracle() {
    run(python()
        .arg(root().join("tools/oracle/fuzz.py"))
        .arg(env!("CARGO_BIN_EXE_spiral"))
        .args(["150", "2026"]));
}
