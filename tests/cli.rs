//! The `spiral` binary as a user runs it: generate, replay, check-config.

use std::path::Path;
use std::process::Command;

use spiral::summary::Summary;

fn spiral() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spiral"))
}

/// Runs `cmd`, asserting it succeeded, and returns its output.
fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn config() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/spiral.toml"))
}

#[test]
fn generate_then_replay_writes_summary_rejections_and_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let traffic = dir.path().join("traffic.jsonl");
    run_ok(
        spiral()
            .args([
                "generate",
                "--seed",
                "3",
                "--accounts",
                "3000",
                "--events",
                "60000",
                "--out",
            ])
            .arg(&traffic),
    );

    let summary_path = dir.path().join("summary.json");
    let out = run_ok(
        spiral()
            .args(["replay", "--config"])
            .arg(config())
            .arg("--summary")
            .arg(&summary_path)
            .arg(&traffic),
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("new_business") && table.contains("expansion") && table.contains("conv%"),
        "{table}"
    );

    let summary: Summary = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    let e = &summary.events;
    assert_eq!(e.received, 60_000, "every line is a message");
    assert_eq!(e.received, e.accepted + e.duplicates + e.rejected.total());
    for reason in spiral::event::RejectReason::ALL {
        assert!(
            e.rejected.get(reason) > 0,
            "no {reason} in generated traffic"
        );
    }
    assert!(e.duplicates > 0 && e.identify > 0 && e.late > 0);
    assert!(summary.funnels.iter().all(|f| f.stages[0].entered > 0));

    // Rejected lines sit beside the summary, one per rejection, with the original text.
    let rejected = std::fs::read_to_string(dir.path().join("summary.rejected.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = rejected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len() as u64, e.rejected.total());
    let text = std::fs::read(&traffic).unwrap();
    let originals: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    for r in &records {
        let line = r["line"].as_u64().unwrap() as usize;
        assert_eq!(r["file"], traffic.display().to_string());
        if let Some(text) = r["text"].as_str() {
            assert_eq!(
                text.as_bytes(),
                originals[line - 1],
                "line {line} kept as it was"
            );
        }
        assert!(r["reason"].is_string() && r["detail"].is_string());
    }
}

#[test]
fn replay_with_a_watermark_decides_outcomes_there() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"event_id":"a","occurred_at":"2026-01-01T00:00:00Z","account_id":"acme","touchpoint":"web_visit"}"#,
            "\n\n",
            r#"{"event_id":"b","occurred_at":"2026-06-01T00:00:00Z","account_id":"other","touchpoint":"web_visit"}"#,
            "\r\n",
        ),
    )
    .unwrap();
    let run = |watermark: Option<&str>| {
        let path = dir.path().join("s.json");
        let mut cmd = spiral();
        cmd.args(["replay", "-q", "--config"])
            .arg(config())
            .arg("--summary")
            .arg(&path);
        if let Some(w) = watermark {
            cmd.args(["--watermark", w]);
        }
        run_ok(cmd.arg(&input));
        serde_json::from_slice::<Summary>(&std::fs::read(&path).unwrap()).unwrap()
    };
    let end = run(None);
    assert_eq!(end.events.received, 2, "the empty line is not a message");
    assert_eq!(end.watermark.as_deref(), Some("2026-06-01T00:00:00.000Z"));
    assert_eq!(end.funnels[0].stages[0].dropped, 1);
    let early = run(Some("2026-01-15T00:00:00+00:00"));
    assert_eq!(early.watermark.as_deref(), Some("2026-01-15T00:00:00.000Z"));
    assert_eq!(
        (
            early.funnels[0].stages[0].open,
            early.funnels[0].stages[0].dropped
        ),
        (2, 0)
    );
}

#[test]
fn check_config_names_file_key_and_problem() {
    run_ok(spiral().arg("check-config").arg(config()));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(config())
        .unwrap()
        .replace("customer = \"60d\"", "foo = \"60d\"");
    std::fs::write(&bad, text).unwrap();
    let out = spiral().arg("check-config").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        format!(
            "spiral: {}: funnel[1].conversion_windows.foo: not a stage of funnel \"expansion\"",
            bad.display()
        )
    );
}

#[test]
fn run_stops_at_start_on_a_misconfiguration() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(config()).unwrap();
    let cases = [
        (
            example.replace("dlq_topic = \"spiral.dlq\"", "dlq_topic = \"identity\""),
            "kafka.topics[2]: \"identity\" is also the dead-letter topic: rejects would loop",
        ),
        (
            example.replace("[kafka.consumer]", "[kafka.consumer]\n\"group.id\" = \"x\""),
            "kafka.consumer.\"group.id\": set by Spiral",
        ),
        (
            example[..example.find("[kafka]").unwrap()].to_string(),
            "the configuration has no [kafka] section",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = spiral()
            .arg("run")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(want), "{want}\n in: {err}");
    }
    let out = spiral()
        .args(["run", "--config"])
        .arg(config())
        .env("SPIRAL_HTTP_LISTEN", "not-an-address")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("SPIRAL_HTTP_LISTEN: \"not-an-address\""),
        "{err}"
    );
}
