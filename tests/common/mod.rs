//! Shared test helpers: an independent, deliberately naive implementation of SPEC §3 (the
//! oracle the engine's numbers are checked against), a CSV reader, and replay in memory.
#![allow(dead_code)]

pub mod bi;
pub mod streams;

use std::collections::HashMap;
use std::path::PathBuf;

use spiral::config::Config;
use spiral::replay::Replayer;
use spiral::summary::Summary;

/// `../shared/datasets` beside the checkout, or `$SPIRAL_DATASETS`.
pub fn datasets() -> PathBuf {
    let dir = std::env::var_os("SPIRAL_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"));
    assert!(
        dir.is_dir(),
        "the public datasets are missing at {} (set SPIRAL_DATASETS)",
        dir.display()
    );
    dir
}

/// Rows of a CSV file as fields (double quotes group fields that hold commas), header skipped.
pub fn csv_rows(path: &std::path::Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut fields = vec![String::new()];
            let mut quoted = false;
            for c in line.trim_end_matches('\r').chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(String::new()),
                    c => fields.last_mut().unwrap().push(c),
                }
            }
            fields
        })
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub const DAY: i64 = 86_400_000;

/// Replays messages (one per element, in order) with a config, as `spiral replay` would.
pub fn replay(config: &str, messages: &[String]) -> Summary {
    let config = Config::parse(config, "test.toml").unwrap();
    let mut replayer = Replayer::new(&config, std::io::sink()).unwrap();
    for (i, m) in messages.iter().enumerate() {
        replayer
            .message(m.as_bytes(), "test", i as u64 + 1)
            .unwrap();
    }
    replayer.finish(None).unwrap().0
}

/// A touch as the oracle sees it: already resolved to its account, with its stage in the
/// funnel under test (`None`: no stage) and whether it is lost.
#[derive(Debug, Clone)]
pub struct OracleTouch {
    pub time: i64,
    pub id: String,
    pub online: bool,
    pub stage: Option<usize>,
    pub lost: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OracleStage {
    pub entered: i64,
    pub converted: i64,
    pub dropped: i64,
    pub open: i64,
    pub conversion_ms_sum: i64,
    pub online: i64,
    pub offline: i64,
    pub turns: [i64; 5],
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OracleFunnel {
    pub journeys: i64,
    pub won: i64,
    pub lost: i64,
    pub stages: Vec<OracleStage>,
}

pub struct OracleRules {
    pub stages: usize,
    pub windows: Vec<i64>,
    pub timeout: i64,
}

/// SPEC §3 written the slow, literal way: sort, cut into journeys, then for each stage look
/// for the first touch at or past it.
pub fn oracle(
    accounts: &HashMap<String, Vec<OracleTouch>>,
    rules: &OracleRules,
    watermark: i64,
) -> OracleFunnel {
    let n = rules.stages;
    let mut out = OracleFunnel {
        stages: vec![OracleStage::default(); n],
        ..Default::default()
    };
    for touches in accounts.values() {
        let mut touches = touches.clone();
        touches.sort_by(|a, b| (a.time, a.id.as_bytes()).cmp(&(b.time, b.id.as_bytes())));
        // Cut into journeys.
        let mut journeys: Vec<Vec<OracleTouch>> = Vec::new();
        for t in touches {
            let new = match journeys.last() {
                None => true,
                Some(j) => {
                    let last = j.last().unwrap();
                    let closed = j.iter().any(|x| x.lost || x.stage == Some(n - 1));
                    closed || t.time - last.time > rules.timeout
                }
            };
            if new {
                journeys.push(vec![t]);
            } else {
                journeys.last_mut().unwrap().push(t);
            }
        }
        let count = journeys.len();
        for (k, j) in journeys.iter().enumerate() {
            let has_later = k + 1 < count;
            out.journeys += 1;
            let lost = j.iter().any(|x| x.lost);
            if lost {
                out.lost += 1;
            }
            if j.iter().any(|x| x.stage == Some(n - 1)) {
                out.won += 1;
            }
            let last_time = j.last().unwrap().time;
            let entering: Vec<Option<usize>> = (0..n)
                .map(|s| j.iter().position(|x| x.stage.is_some_and(|st| st >= s)))
                .collect();
            for s in 0..n {
                let Some(i) = entering[s] else { continue };
                let st = &mut out.stages[s];
                st.entered += 1;
                if j[i].online {
                    st.online += 1;
                } else {
                    st.offline += 1;
                }
                let turns = j[..=i]
                    .windows(2)
                    .filter(|w| w[0].online != w[1].online)
                    .count();
                st.turns[turns.min(4)] += 1;
                if s == n - 1 {
                    continue;
                }
                let entered = j[i].time;
                match entering[s + 1] {
                    Some(i2) if j[i2].time - entered <= rules.windows[s] => {
                        st.converted += 1;
                        st.conversion_ms_sum += j[i2].time - entered;
                    }
                    Some(_) => st.dropped += 1,
                    None if lost
                        || has_later
                        || watermark - entered > rules.windows[s]
                        || watermark - last_time > rules.timeout =>
                    {
                        st.dropped += 1
                    }
                    None => st.open += 1,
                }
            }
        }
    }
    out
}

/// Asserts that one funnel of a summary equals the oracle, stage by stage.
pub fn assert_funnel_eq(summary: &Summary, funnel: usize, expected: &OracleFunnel) {
    let f = &summary.funnels[funnel];
    assert_eq!(
        (f.journeys, f.journeys_won, f.journeys_lost),
        (expected.journeys, expected.won, expected.lost),
        "funnel {} journeys/won/lost",
        f.name
    );
    for (s, e) in f.stages.iter().zip(&expected.stages) {
        let got = OracleStage {
            entered: s.entered,
            converted: s.converted,
            dropped: s.dropped,
            open: s.open,
            conversion_ms_sum: s.conversion_ms_sum,
            online: s.entered_by_channel.online,
            offline: s.entered_by_channel.offline,
            turns: s.turns_before_entry.as_array(),
        };
        assert_eq!(&got, e, "funnel {} stage {}", f.name, s.name);
    }
}
