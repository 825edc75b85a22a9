//! The BI files checked the way an analyst would read them: the shipped DuckDB views
//! (`deploy/bi/views.sql`, run by `deploy/bi/query.py`) over an export directory must give
//! the summary's numbers for every funnel and stage.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use spiral::config::{Config, ExportConfig};
use spiral::export::Exporter;
use spiral::replay::Replayer;
use spiral::summary::Summary;

/// The Python with the `duckdb` package: `$SPIRAL_DUCKDB_PYTHON`, or the one
/// `scripts/deps.sh` installs.
pub fn duckdb_python() -> PathBuf {
    let python = std::env::var_os("SPIRAL_DUCKDB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/spiral/duckdb/bin/python")
        });
    assert!(
        python.exists(),
        "DuckDB for Python is missing at {} (run scripts/deps.sh, or set SPIRAL_DUCKDB_PYTHON)",
        python.display()
    );
    python
}

/// Rows of each query over the export directory `dir`, after the shipped views.
pub fn query(dir: &Path, sql: &[&str]) -> Vec<Vec<Value>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/bi/query.py");
    let out = Command::new(duckdb_python())
        .arg(script)
        .arg(dir)
        .args(sql)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "query.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| match serde_json::from_str(line).unwrap() {
            Value::Array(rows) => rows,
            other => panic!("not rows: {other}"),
        })
        .collect()
}

/// Asserts that the files under `dir` give `summary`'s journey counts and every number of
/// its stage table, for every funnel and stage (a stage nobody entered has no rows).
pub fn assert_files_match(dir: &Path, summary: &Summary) {
    let results = query(dir, &["FROM funnel_table", "FROM stage_table"]);
    let (funnels, stages) = (&results[0], &results[1]);
    let int = |row: &Value, key: &str| row[key].as_i64().unwrap_or_else(|| panic!("{key}: {row}"));
    for f in &summary.funnels {
        let journeys = funnels
            .iter()
            .find(|r| r["funnel"] == f.name.as_str())
            .map(|r| {
                (
                    int(r, "journeys"),
                    int(r, "journeys_won"),
                    int(r, "journeys_lost"),
                )
            })
            .unwrap_or_default();
        assert_eq!(
            journeys,
            (f.journeys, f.journeys_won, f.journeys_lost),
            "funnel {}: journeys, won, lost from the files",
            f.name
        );
        for (i, s) in f.stages.iter().enumerate() {
            let row = stages
                .iter()
                .find(|r| r["funnel"] == f.name.as_str() && r["stage_index"] == i);
            let got = row.map_or([0; 12], |r| {
                [
                    int(r, "entered"),
                    int(r, "converted"),
                    int(r, "dropped"),
                    int(r, "open"),
                    int(r, "conversion_ms_sum"),
                    int(r, "entered_online"),
                    int(r, "entered_offline"),
                    int(r, "turns_0"),
                    int(r, "turns_1"),
                    int(r, "turns_2"),
                    int(r, "turns_3"),
                    int(r, "turns_4_plus"),
                ]
            });
            assert_eq!(
                got,
                stage_numbers(s),
                "funnel {} stage {} from the files",
                f.name,
                s.name
            );
        }
    }
}

/// A stage's numbers in the order both checks compare them: entered, converted, dropped, open,
/// conversion ms, entered online and offline, turns 0 to 4+.
fn stage_numbers(s: &spiral::summary::StageSummary) -> [i64; 12] {
    let t = s.turns_before_entry.as_array();
    [
        s.entered,
        s.converted,
        s.dropped,
        s.open,
        s.conversion_ms_sum,
        s.entered_by_channel.online,
        s.entered_by_channel.offline,
        t[0],
        t[1],
        t[2],
        t[3],
        t[4],
    ]
}

/// Replays `messages` with the export on, publishing a revision every `every` messages (as
/// the live service does at each checkpoint) and at the end; checks the files against the
/// summary and returns it.
pub fn replay_checked(config: &str, messages: &[String], every: usize) -> Summary {
    let config = Config::parse(config, "test.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = ExportConfig {
        dir: dir.path().to_path_buf(),
        ..ExportConfig::default()
    };
    let mut replayer = Replayer::new(&config, std::io::sink())
        .unwrap()
        .with_export(Exporter::open(&settings, 1).unwrap());
    for (i, m) in messages.iter().enumerate() {
        replayer
            .message(m.as_bytes(), "test", i as u64 + 1)
            .unwrap();
        if (i + 1) % every.max(1) == 0 {
            replayer.publish_export().unwrap();
        }
    }
    let summary = replayer.finish(None).unwrap().0;
    assert_files_match(dir.path(), &summary);
    summary
}

/// Folds stage-transition messages (key, JSON payload) the way `docs/bi.md` tells a consumer
/// to, and asserts that they give `summary`'s journey counts and stage table, and that each
/// is keyed by its account.
pub fn assert_transitions_match(messages: &[(Vec<u8>, Vec<u8>)], summary: &Summary) {
    use std::collections::{BTreeMap, HashMap};
    let messages: Vec<Value> = messages
        .iter()
        .map(|(key, payload)| {
            let m: Value = serde_json::from_slice(payload).expect("a JSON transition");
            assert_eq!(
                m["account_id"].as_str().unwrap().as_bytes(),
                &key[..],
                "{m}"
            );
            m
        })
        .collect();
    let text = |m: &Value, k: &str| {
        m[k].as_str()
            .unwrap_or_else(|| panic!("{k}: {m}"))
            .to_string()
    };
    let num = |m: &Value, k: &str| m[k].as_u64().unwrap_or_else(|| panic!("{k}: {m}"));
    let journey_key = |m: &Value| (text(m, "funnel"), text(m, "account_id"), num(m, "journey"));
    let (journey_messages, stage_messages): (Vec<&Value>, Vec<&Value>) =
        messages.iter().partition(|m| m["type"] == "journey");
    assert!(stage_messages.iter().all(|m| m["type"] == "stage"));
    // Per (funnel, account): the newest revision and its journey count.
    let mut accounts: HashMap<(String, String), (u64, u64)> = HashMap::new();
    // Per (funnel, account, journey): its newest message.
    let mut journeys: HashMap<(String, String, u64), &Value> = HashMap::new();
    for m in journey_messages {
        let revision = num(m, "revision");
        let newest = accounts
            .entry((text(m, "funnel"), text(m, "account_id")))
            .or_insert((0, 0));
        if revision >= newest.0 {
            *newest = (revision, num(m, "account_journeys"));
        }
        let journey = journeys.entry(journey_key(m)).or_insert(m);
        if revision >= num(journey, "revision") {
            *journey = m;
        }
    }
    journeys.retain(|k, _| k.2 < accounts[&(k.0.clone(), k.1.clone())].1);
    // The current stage entries, once each (a revision may have been sent more than once).
    let mut current: BTreeMap<(String, String, u64, u64), &Value> = BTreeMap::new();
    for m in stage_messages {
        let key = journey_key(m);
        if journeys
            .get(&key)
            .is_some_and(|j| j["revision"] == m["revision"])
        {
            current.insert((key.0, key.1, key.2, num(m, "stage_index")), m);
        }
    }
    for f in &summary.funnels {
        let live: Vec<&&Value> = journeys
            .iter()
            .filter(|(k, _)| k.0 == f.name)
            .map(|(_, j)| j)
            .collect();
        let status = |s: &str| live.iter().filter(|j| j["status"] == s).count() as i64;
        assert_eq!(
            (live.len() as i64, status("won"), status("lost")),
            (f.journeys, f.journeys_won, f.journeys_lost),
            "funnel {}: journeys, won, lost from the transitions",
            f.name
        );
        for (i, s) in f.stages.iter().enumerate() {
            let at: Vec<&&Value> = current
                .iter()
                .filter(|(k, _)| k.0 == f.name && k.3 == i as u64)
                .map(|(_, m)| m)
                .collect();
            let count =
                |key: &str, value: &str| at.iter().filter(|m| m[key] == value).count() as i64;
            let turns = |n: u64| {
                at.iter()
                    .filter(|m| m["turns_before_entry"].as_u64().unwrap().min(4) == n)
                    .count() as i64
            };
            let got = [
                at.len() as i64,
                count("outcome", "converted"),
                count("outcome", "dropped"),
                count("outcome", "open"),
                at.iter()
                    .map(|m| m["time_to_convert_ms"].as_i64().unwrap_or(0))
                    .sum(),
                count("channel", "online"),
                count("channel", "offline"),
                turns(0),
                turns(1),
                turns(2),
                turns(3),
                turns(4),
            ];
            assert_eq!(
                got,
                stage_numbers(s),
                "funnel {} stage {} from the transitions",
                f.name,
                s.name
            );
        }
    }
}
