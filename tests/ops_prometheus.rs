//! End to end: a real Prometheus (Debian's `/usr/bin/prometheus`) scrapes a running Spiral
//! (`spiral demo`: the generator's traffic through librdkafka's mock cluster) on loopback, with
//! deploy/prometheus's recording and alert rules loaded, scraping and evaluating every second.
//! Through Prometheus' HTTP API it checks that
//! - every recording rule evaluates and returns data, and `/api/v1/rules` shows every rule
//!   healthy;
//! - every query of the Grafana dashboard (template variables substituted with real values)
//!   evaluates without error and returns data, and the `funnel`/`stage` variables find values;
//! - two alerts are driven to firing, each a copy of a production alert in which only windows,
//!   `for` and thresholds are shortened (the copies are derived from alerts.yml by the test,
//!   so they cannot drift from it):
//!   * SpiralStageConversionDrop, with `[1d]` → `[10s]` (and the subquery `[1d:]` →
//!     `[10s:]`) and `offset 1w` → `offset 20s`, on a
//!     real drop: after 35 s of the demo's traffic the test produces 20 000 `ad_click`s of new
//!     accounts into the demo's `touchpoints.online` (awareness entries that never convert), and
//!     the alert must fire for new_business/awareness — and must not have fired before;
//!   * SpiralDeadLetterRateHigh, with 10 min → 15 s, 5 % → 0.5 % and 50 → 5 rejections: the
//!     demo's traffic carries ~1 % broken messages.
//!
//! `spiral demo` serves on a free port given in `SPIRAL_HTTP_LISTEN`, as a deployment sets it
//! (the test finds nothing there if the demo ignored the variable).

mod ops;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ops::{Killed, RULE_FILES, free_port, http_get, repo, rules, str_of, url_encode};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

const FUNNEL: &str = "new_business";
const STAGE: &str = "awareness";

#[test]
fn prometheus_scrapes_spiral_evaluates_the_rules_and_the_dashboard_and_fires_alerts() {
    let started = Instant::now();
    let spiral = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().expect("tempdir");

    // Spiral on generated traffic: 2 000 messages/s for longer than the test runs.
    let mut demo = Killed(
        Command::new(env!("CARGO_BIN_EXE_spiral"))
            .args([
                "demo",
                "--seconds",
                "150",
                "--rate",
                "2000",
                "--events",
                "1000000",
            ])
            .args(["--table-every", "3600"])
            .env("SPIRAL_HTTP_LISTEN", &spiral)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("demo.log")).expect("log"))
            .spawn()
            .expect("start spiral demo"),
    );
    let bootstrap = demo_bootstrap(&mut demo);
    wait_until("spiral /readyz", Duration::from_secs(60), || {
        http_get(&spiral, "/readyz").is_some_and(|(status, _)| status == 200)
    });

    // Prometheus with the production rules and the shortened copies of two alerts.
    let e2e_rules = dir.path().join("e2e_alerts.yml");
    std::fs::write(&e2e_rules, e2e_alerts()).expect("write e2e rules");
    let mut rule_files: Vec<String> = RULE_FILES
        .iter()
        .map(|f| repo(f).display().to_string())
        .collect();
    rule_files.push(e2e_rules.display().to_string());
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: {rule_files:?}\n\
         scrape_configs:\n  - job_name: spiral\n    static_configs:\n      - targets: [\"{spiral}\"]\n"
    );
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, config).expect("write prometheus.yml");
    let prom = format!("127.0.0.1:{}", free_port());
    let _prometheus = Killed(
        Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log"))
            .spawn()
            .expect("start prometheus (./scripts/deps.sh installs Debian's)"),
    );
    wait_until("prometheus /-/ready", Duration::from_secs(30), || {
        http_get(&prom, "/-/ready").is_some_and(|(status, _)| status == 200)
    });
    let prometheus_started = Instant::now();

    // Every recording rule returns data once a few scrapes are in.
    let records: Vec<String> = RULE_FILES
        .iter()
        .flat_map(|f| rules(f))
        .filter_map(|r| r.get("record").map(|_| str_of(&r, "record").to_string()))
        .collect();
    assert!(records.len() >= 9);
    wait_until(
        "data from every recording rule",
        Duration::from_secs(30),
        || records.iter().all(|r| !query(&prom, r).is_empty()),
    );
    for record in &records {
        let result = query(&prom, &format!("{record}{{funnel=\"{FUNNEL}\"}}"));
        assert!(!result.is_empty(), "{record} has no series for {FUNNEL}");
    }

    // Every rule healthy.
    let rules_api = api(&prom, "/api/v1/rules");
    let mut seen = 0;
    for group in rules_api["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            seen += 1;
            assert_eq!(
                rule["health"], "ok",
                "rule {} in {}: {}",
                rule["name"], group["file"], rule["lastError"]
            );
        }
    }
    assert!(seen >= records.len() + 10, "{seen} rules loaded");

    // The dashboard: its template variables find values, and every panel query has data.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("deploy/grafana/dashboards/spiral.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let funnels = label_values(&prom, "funnel", "spiral_stage_entered_total");
    assert!(funnels.contains(&FUNNEL.to_string()), "{funnels:?}");
    let stages = label_values(
        &prom,
        "stage",
        &format!("spiral_stage_entered_total{{funnel=\"{FUNNEL}\"}}"),
    );
    assert!(stages.contains(&STAGE.to_string()), "{stages:?}");
    let exprs = panel_queries(&dashboard);
    assert!(exprs.len() >= 20, "{} panel queries", exprs.len());
    for (title, expr) in &exprs {
        let promql = expr
            .replace("$funnel", FUNNEL)
            .replace("$stage", STAGE)
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "1m")
            .replace("$__range", "1h");
        assert!(
            !promql.contains('$'),
            "{title}: unsubstituted variable in {promql}"
        );
        let result = query(&prom, &promql);
        assert!(!result.is_empty(), "panel {title:?}: no data for {promql}");
    }

    // The dead-letter copy fires on the demo's ~1 % broken messages.
    wait_until(
        "SpiralDeadLetterRateHighE2E firing",
        Duration::from_secs(40),
        || firing(&prom).contains_key("SpiralDeadLetterRateHighE2E"),
    );

    // The conversion copy compares the last 10 s with 20 s earlier: give it 35 s of data, make
    // sure the demo's own traffic does not fire it, then drop awareness' conversion.
    let warm = Duration::from_secs(35);
    if let Some(rest) = warm.checked_sub(prometheus_started.elapsed()) {
        std::thread::sleep(rest);
    }
    let before = firing(&prom);
    assert!(
        !before.contains_key("SpiralStageConversionDropE2E"),
        "the conversion alert fired on the demo's own traffic: {before:?}"
    );
    let entered_before = stage_sum(&prom, "spiral_stage_entered_total");
    inject_unconverted_entries(&bootstrap, &prom, 20_000);
    wait_until(
        "SpiralStageConversionDropE2E firing",
        Duration::from_secs(30),
        || {
            firing(&prom)
                .get("SpiralStageConversionDropE2E")
                .is_some_and(|labels| labels.iter().any(|l| l.contains(STAGE)))
        },
    );
    // The alert may fire before the last injected entries are scraped; they must all land.
    wait_until(
        "the 20 000 injected entries in awareness",
        Duration::from_secs(20),
        || stage_sum(&prom, "spiral_stage_entered_total") >= entered_before + 20_000.0,
    );
    // For the record: how often awareness' breakdown series went down (entries moving between
    // channels and campaigns), against its sum per instance (what the rules take increase() of).
    let selector = format!("spiral_stage_entered_total{{funnel=\"{FUNNEL}\",stage=\"{STAGE}\"}}");
    let resets = |q: String| {
        query(&prom, &q)[0]["value"][1]
            .as_str()
            .unwrap_or("?")
            .to_string()
    };
    eprintln!(
        "ops_prometheus: done in {:.1} s; decreases seen in 5 min: {} over awareness' breakdown \
         series, {} in their sum",
        started.elapsed().as_secs_f64(),
        resets(format!("sum(resets({selector}[5m]))")),
        resets(format!(
            "resets((sum by (job, instance) ({selector}))[5m:1s])"
        )),
    );
}

/// Debian's server (what scripts/deps.sh installs), else any `prometheus` on PATH.
fn prometheus_binary() -> &'static str {
    if std::path::Path::new("/usr/bin/prometheus").exists() {
        "/usr/bin/prometheus"
    } else {
        "prometheus"
    }
}

/// The demo prints its mock cluster's address on its first line.
fn demo_bootstrap(demo: &mut Killed) -> String {
    let stdout = demo.0.stdout.take().expect("demo stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        // Keep draining so the demo never blocks on a full pipe.
        for _ in lines {}
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("spiral demo printed nothing");
    first
        .rsplit(' ')
        .next()
        .filter(|a| a.contains(':'))
        .unwrap_or_else(|| panic!("no broker address in {first:?}"))
        .to_string()
}

/// Produces `n` `ad_click`s of accounts seen nowhere else (awareness entries that will never
/// convert), timed at the newest event time so they are not late.
fn inject_unconverted_entries(bootstrap: &str, prom: &str, n: usize) {
    let watermark = query(prom, "max(spiral_watermark_seconds)")[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .expect("a watermark");
    // The watermark trails the newest event by allowed_lateness (2 d in the example config).
    let at_ms = (watermark * 1000.0) as i64 + 2 * 86_400_000;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for i in 0..n {
        let payload = format!(
            r#"{{"event_id":"e2e-drop-{i}","occurred_at":{},"account_id":"e2e-acct-{i}","touchpoint":"ad_click","campaign":"e2e"}}"#,
            at_ms + i as i64
        );
        let mut record = BaseRecord::<(), String>::to("touchpoints.online").payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("flush the injected entries");
}

/// Copies of two production alerts with short windows, derived from alerts.yml: every listed
/// replacement must apply, so a change of the production expression shows up here.
fn e2e_alerts() -> String {
    let derive = |name: &str, replacements: &[(&str, &str)], for_: &str| {
        let mut alert = rules("deploy/prometheus/alerts.yml")
            .into_iter()
            .find(|r| str_of(r, "alert") == name)
            .unwrap_or_else(|| panic!("alerts.yml has no {name}"));
        let mut expr = str_of(&alert, "expr").to_string();
        for (from, to) in replacements {
            assert!(expr.contains(from), "{name}: {from:?} not in {expr}");
            expr = expr.replace(from, to);
        }
        alert["alert"] = format!("{name}E2E").into();
        alert["expr"] = expr.into();
        alert["for"] = for_.into();
        alert
    };
    let rules = vec![
        derive(
            "SpiralStageConversionDrop",
            &[
                ("[1d:]", "[10s:]"),
                ("[1d]", "[10s]"),
                ("offset 1w", "offset 20s"),
            ],
            "0s",
        ),
        derive(
            "SpiralDeadLetterRateHigh",
            &[("[10m]", "[15s]"), ("> 0.05", "> 0.005"), (">= 50", ">= 5")],
            "2s",
        ),
    ];
    let mut group = serde_yaml::Mapping::new();
    group.insert("name".into(), "spiral-e2e-shortened".into());
    group.insert("rules".into(), serde_yaml::Value::Sequence(rules));
    let mut file = serde_yaml::Mapping::new();
    file.insert(
        "groups".into(),
        serde_yaml::Value::Sequence(vec![serde_yaml::Value::Mapping(group)]),
    );
    serde_yaml::to_string(&file).expect("YAML")
}

/// Every (panel title, PromQL) of the dashboard, rows' nested panels included.
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = panels.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((
                    panel["title"].as_str().unwrap_or("").to_string(),
                    expr.to_string(),
                ));
            }
        }
    }
    out
}

fn api(prom: &str, path: &str) -> Value {
    let (status, body) = http_get(prom, path).unwrap_or_else(|| panic!("prometheus: {path}"));
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    assert!(
        status == 200 && json["status"] == "success",
        "{path}: {status} {body}"
    );
    json["data"].clone()
}

/// An instant query's result vector (panics on a query error).
fn query(prom: &str, promql: &str) -> Vec<Value> {
    let data = api(prom, &format!("/api/v1/query?query={}", url_encode(promql)));
    match data["resultType"].as_str() {
        Some("scalar") => vec![data["result"].clone()],
        _ => data["result"].as_array().cloned().unwrap_or_default(),
    }
}

fn label_values(prom: &str, label: &str, selector: &str) -> Vec<String> {
    let data = api(
        prom,
        &format!(
            "/api/v1/label/{label}/values?match[]={}",
            url_encode(selector)
        ),
    );
    data.as_array()
        .expect("values")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Firing alerts: name → their labels, rendered.
fn firing(prom: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for alert in api(prom, "/api/v1/alerts")["alerts"]
        .as_array()
        .expect("alerts")
    {
        if alert["state"] == "firing" {
            let labels = &alert["labels"];
            out.entry(labels["alertname"].as_str().unwrap_or("").to_string())
                .or_default()
                .push(labels.to_string());
        }
    }
    out
}

fn stage_sum(prom: &str, metric: &str) -> f64 {
    let result = query(
        prom,
        &format!("sum({metric}{{funnel=\"{FUNNEL}\",stage=\"{STAGE}\"}})"),
    );
    result[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
