//! The live funnel page at `/`, opened in headless Chromium: it renders every funnel and stage
//! with the numbers of `/api/v1/summary`. The screenshot is kept as a test artifact in
//! `target/test-artifacts/live-page.png`.
//!
//! Needs Debian's `chromium` (`scripts/deps.sh` installs it).

mod live;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Headless Chromium as the env notes run it, with a fresh profile; `args` say what to do.
fn chromium(url: &str, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Lets the page's fetch of the summary finish before the DOM is read.
            "--virtual-time-budget=5000",
            "--window-size=1200,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (run scripts/deps.sh)")
}

/// `name="value"` attributes of every element that has `data-stage`.
fn stage_rows(dom: &str) -> Vec<std::collections::HashMap<String, String>> {
    dom.split('<')
        .filter(|tag| tag.starts_with("div") && tag.contains("data-stage="))
        .map(|tag| {
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            tag.split("\" ")
                .filter_map(|attr| {
                    let (name, value) = attr.trim_start_matches("div ").split_once("=\"")?;
                    Some((
                        name.trim().to_string(),
                        value.trim_end_matches('"').to_string(),
                    ))
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_live_page_shows_the_summary() {
    let mock = live::Mock::new(2, 31, 500, 5_000, "page");
    let (runtime, service) = mock.start();
    let lines = &mock.lines;
    let summary = live::settled_summary(service.addr, lines.len() as u64, Duration::from_secs(60));

    let url = format!("http://{}/", service.addr);
    let dumped = chromium(&url, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dumped.stdout);
    assert!(
        dom.contains("data-rendered=\"true\""),
        "the page rendered the summary:\n{dom}"
    );
    let rows = stage_rows(&dom);
    let stages: usize = summary.funnels.iter().map(|f| f.stages.len()).sum();
    assert_eq!(rows.len(), stages, "one row per stage of every funnel");
    for funnel in &summary.funnels {
        for stage in &funnel.stages {
            let row = rows
                .iter()
                .find(|r| r["data-funnel"] == funnel.name && r["data-stage"] == stage.name)
                .unwrap_or_else(|| panic!("no row for {} / {}", funnel.name, stage.name));
            for (field, value) in [
                ("data-entered", stage.entered),
                ("data-converted", stage.converted),
                ("data-dropped", stage.dropped),
                ("data-open", stage.open),
            ] {
                assert_eq!(
                    row[field],
                    value.to_string(),
                    "{} / {} {field}",
                    funnel.name,
                    stage.name
                );
            }
        }
    }
    let entered = summary.funnels[0].stages[0].entered;
    // As the page prints it: en-US thousands separators.
    let digits = entered.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let shown = groups.join(",");
    assert!(
        dom.contains(&shown),
        "entered {shown} is printed for people too"
    );

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("live-page.png");
    let _ = std::fs::remove_file(&png);
    let shot = chromium(&url, &[&format!("--screenshot={}", png.display())]);
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert_eq!(&bytes[1..4], b"PNG");
    assert!(bytes.len() > 20_000, "the screenshot has content");

    runtime.block_on(service.stop()).expect("clean stop");
}
