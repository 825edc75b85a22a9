//! The invariants SPEC promises, over random event streams (proptest):
//! arrival order does not change the summary (but `late`), duplicates change nothing,
//! splitting the input across files changes nothing, every stage but the last adds up, and
//! an engine split into a resolver and journeys engines by account adds up to one engine.

mod common;

use std::collections::HashMap;

use common::streams::*;
use common::*;
use proptest::prelude::*;
use spiral::config::Config;
use spiral::engine::{Applied, Engine, LinkedIds, ResolvedTouch};
use spiral::event::Decoder;
use spiral::replay::{self, ReplayOptions, Replayer};
use spiral::summary::Summary;

/// The engine split at its keys, in one process (`engine::split`): resolvers that each own
/// the event ids hashing to them and tell each other their links, and journeys engines that
/// each own the accounts hashing to them; all follow one watermark, as the live service's
/// stages follow the watermark records of the input partitions.
struct Split {
    decoder: Decoder,
    allowed_lateness: i64,
    newest: Option<i64>,
    resolvers: Vec<Engine>,
    journeys: Vec<Engine>,
    /// With log resolvers: the links log (owner, record) and how far each resolver has read
    /// it; each lags behind the end by the next of `lags` after every message.
    log: Option<Vec<(usize, Vec<u8>)>>,
    read: Vec<usize>,
    lags: Vec<usize>,
    step: usize,
}

fn shard_of(key: &[u8], shards: usize) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let hasher = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    hasher.hash_one(key) as usize % shards
}

impl Split {
    fn new(config: &Config, resolvers: usize, journeys: usize, long_journey: usize) -> Split {
        let journeys = (0..journeys)
            .map(|_| {
                let mut engine = Engine::new(config).unwrap().into_journeys();
                engine.set_long_journey(long_journey);
                engine
            })
            .collect();
        let n = resolvers;
        let resolvers = (0..n)
            .map(|_| Engine::new(config).unwrap().into_resolver())
            .collect();
        Split {
            decoder: Decoder::new(
                config.pipeline.max_event_bytes,
                config.touchpoints.iter().cloned(),
            ),
            allowed_lateness: config.pipeline.allowed_lateness,
            newest: None,
            resolvers,
            journeys,
            log: None,
            read: vec![0; n],
            lags: Vec::new(),
            step: 0,
        }
    }

    /// Resolvers that learn every link, their own too, from a log they each read with a lag.
    fn with_log(mut self, config: &Config, lags: Vec<usize>) -> Split {
        for engine in &mut self.resolvers {
            *engine = Engine::new(config).unwrap().into_log_resolver();
        }
        self.log = Some(Vec::new());
        self.lags = lags;
        self
    }

    /// Each resolver reads the log up to its lag behind the end (`all`: to the end), then
    /// what that released goes on.
    fn read_log(&mut self, all: bool) {
        let Some(log) = &self.log else { return };
        for r in 0..self.resolvers.len() {
            let lag = if all {
                0
            } else {
                self.lags[(self.step + r) % self.lags.len()]
            };
            let upto = log.len().saturating_sub(lag);
            while self.read[r] < upto {
                let (owner, record) = &log[self.read[r]];
                self.resolvers[r].apply_links(&LinkedIds::decode(record).unwrap(), *owner == r);
                self.read[r] += 1;
            }
        }
        self.step += 1;
        let all: Vec<usize> = (0..self.resolvers.len()).collect();
        self.hand_on(&all);
    }

    fn message(&mut self, bytes: &[u8]) {
        let event = match self.decoder.decode(bytes) {
            Ok(event) => event,
            Err(rejection) => {
                // Counted where it is read (stage A); any resolver's counters will do.
                self.resolvers[0].reject(rejection.reason);
                return;
            }
        };
        let owner = shard_of(event.event_id.as_bytes(), self.resolvers.len());
        if let Applied::Accepted { .. } = self.resolvers[owner].apply(&event) {
            self.newest = self.newest.max(Some(event.occurred_at));
        }
        let links = self.resolvers[owner].take_links();
        if let Some(log) = &mut self.log {
            for linked in &links {
                let mut record = Vec::new();
                linked.encode(&mut record);
                log.push((owner, record));
            }
            self.read_log(false);
            if let Some(newest) = self.newest {
                self.advance(newest - self.allowed_lateness);
            }
            return;
        }
        let mut order: Vec<usize> = (0..self.resolvers.len()).filter(|&r| r != owner).collect();
        for &r in &order {
            for linked in &links {
                let mut record = Vec::new();
                linked.encode(&mut record);
                self.resolvers[r].apply_links(&LinkedIds::decode(&record).unwrap(), false);
            }
        }
        // The event's own touch comes after every touch its links released, as in one engine.
        order.push(owner);
        self.hand_on(&order);
        if let Some(newest) = self.newest {
            self.advance(newest - self.allowed_lateness);
        }
    }

    fn finish(&mut self) {
        self.read_log(true);
        if let Some(newest) = self.newest {
            self.advance(newest);
        }
    }

    fn advance(&mut self, watermark: i64) {
        for engine in self.resolvers.iter_mut().chain(&mut self.journeys) {
            engine.advance_watermark(watermark);
        }
        // Expiry releases nothing, but the resolvers are drained after every move all the same.
        let all: Vec<usize> = (0..self.resolvers.len()).collect();
        self.hand_on(&all);
    }

    /// Resolved touches to the journeys engines owning their accounts, placed at the
    /// watermark in force when the resolvers released them.
    fn hand_on(&mut self, resolvers: &[usize]) {
        for &r in resolvers {
            for touch in self.resolvers[r].take_resolved() {
                let owner = shard_of(touch.account.as_bytes(), self.journeys.len());
                // Through the record that carries it between processes.
                let mut record = Vec::new();
                touch.encode(&mut record);
                let touch = ResolvedTouch::decode(&record).unwrap();
                self.journeys[owner].apply_resolved(&touch).unwrap();
            }
        }
    }

    /// Every engine checkpointed and restored in its role, as a restart does.
    fn restart(&mut self, config: &Config) {
        for engine in self.resolvers.iter_mut().chain(&mut self.journeys) {
            let mut bytes = Vec::new();
            engine.snapshot(&mut bytes);
            *engine = Engine::restore(config, &bytes).unwrap();
        }
    }

    fn summary(&self) -> Summary {
        let mut summary = self.journeys[0].summary();
        for engine in self.resolvers.iter().chain(&self.journeys[1..]) {
            summary.add(&engine.summary()).unwrap();
        }
        summary
    }

    /// Stage entries by (funnel, stage, online, label values), from every journeys engine.
    fn entries_by_labels(&self) -> HashMap<(usize, u8, bool, Vec<String>), i64> {
        entries_by_labels(&self.journeys.iter().collect::<Vec<_>>())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arrival_order_does_not_change_the_summary(specs in prop::collection::vec(spec(), 1..60), seed in any::<u64>()) {
        let config = format!("{PATIENT}{FUNNELS}");
        let ordered = messages(&specs);
        let a = replay(&config, &ordered);
        let b = replay(&config, &shuffled(&ordered, seed));
        prop_assert_eq!(without_late(a), without_late(b));
    }

    #[test]
    fn duplicates_change_nothing(specs in prop::collection::vec(spec(), 1..60), picks in prop::collection::vec(any::<prop::sample::Index>(), 1..20)) {
        let config = format!("{PATIENT}{FUNNELS}");
        let original = messages(&specs);
        let mut with_copies = original.clone();
        for p in &picks {
            with_copies.push(original[p.index(original.len())].clone());
        }
        let a = replay(&config, &original);
        let mut b = replay(&config, &with_copies);
        prop_assert_eq!(b.events.duplicates, picks.len() as u64);
        b.events.duplicates = 0;
        b.events.received = a.events.received;
        prop_assert_eq!(a, b);
    }

    #[test]
    fn stages_add_up_and_incremental_counters_match_a_recomputation(specs in prop::collection::vec(spec(), 1..80), seed in any::<u64>(), long_journey in 1..6usize) {
        let config = format!("{HASTY}{FUNNELS}\n[metrics]\ndimensions = [\"campaign\"]\ntop_n = 2\n");
        let msgs = shuffled(&messages(&specs), seed);
        let config_parsed = Config::parse(&config, "t").unwrap();
        let engine = spiral::engine::Engine::new(&config_parsed).unwrap();
        let mut replayer = Replayer::with_engine(engine, &config_parsed, std::io::sink());
        replayer.engine().set_long_journey(long_journey);
        for (i, m) in msgs.iter().enumerate() {
            replayer.message(m.as_bytes(), "t", i as u64).unwrap();
            // Mid-stream too: the counters are right at every moment, not only at the end.
            let engine = replayer.engine();
            if let Some(w) = engine.watermark() {
                let stats = engine.stats().to_vec();
                prop_assert_eq!(stats, engine.recompute_stats(w));
            }
        }
        let (summary, engine) = replayer.finish(None).unwrap();
        for (f, stats) in summary.funnels.iter().zip(engine.stats()) {
            let by_dims = stats.entered_by_dims.as_ref().expect("dimensions configured");
            for (i, s) in f.stages.iter().enumerate() {
                let sum: i64 = by_dims.iter().filter(|(k, _)| k.0 as usize == i).map(|(_, n)| n).sum();
                prop_assert_eq!(sum, s.entered, "entries by dimension add up");
            }
        }
        for f in &summary.funnels {
            let last = f.stages.len() - 1;
            for (i, s) in f.stages.iter().enumerate() {
                if i < last {
                    prop_assert_eq!(s.converted + s.dropped + s.open, s.entered, "{} {}", f.name, s.name);
                } else {
                    prop_assert_eq!((s.converted, s.dropped, s.open, s.conversion_ms_sum), (0, 0, 0, 0));
                }
                prop_assert_eq!(s.entered_by_channel.online + s.entered_by_channel.offline, s.entered);
                prop_assert_eq!(s.turns_before_entry.as_array().iter().sum::<i64>(), s.entered);
                if i > 0 {
                    prop_assert!(s.entered <= f.stages[i - 1].entered);
                }
            }
        }
        let e = &summary.events;
        prop_assert_eq!(e.received, e.accepted + e.duplicates + e.rejected.total());
    }

    #[test]
    fn a_restored_snapshot_goes_on_like_the_engine_that_took_it(specs in prop::collection::vec(spec(), 1..80), seed in any::<u64>(), cut in any::<prop::sample::Index>(), long_journey in 1..6usize) {
        let config = format!("{HASTY}{FUNNELS}\n[metrics]\ndimensions = [\"campaign\"]\ntop_n = 2\n");
        let config = Config::parse(&config, "t").unwrap();
        let mut msgs = shuffled(&messages(&specs), seed);
        msgs.insert(seed as usize % (msgs.len() + 1), "not json".to_string());
        let k = cut.index(msgs.len() + 1);
        let mut engine = Engine::new(&config).unwrap();
        engine.set_long_journey(long_journey);
        let mut whole = Replayer::with_engine(engine, &config, std::io::sink());
        for (i, m) in msgs[..k].iter().enumerate() {
            whole.message(m.as_bytes(), "t", i as u64).unwrap();
        }
        let mut bytes = Vec::new();
        whole.engine().snapshot(&mut bytes);
        let restored = Engine::restore(&config, &bytes).unwrap();
        let mut again = Vec::new();
        restored.snapshot(&mut again);
        prop_assert!(again == bytes, "restore then snapshot gives the same bytes");
        let mut rest = Replayer::with_engine(restored, &config, std::io::sink());
        for (i, m) in msgs.iter().enumerate().skip(k) {
            whole.message(m.as_bytes(), "t", i as u64).unwrap();
            rest.message(m.as_bytes(), "t", i as u64).unwrap();
        }
        let (a, whole) = whole.finish(None).unwrap();
        let (b, rest) = rest.finish(None).unwrap();
        prop_assert_eq!(a, b);
        prop_assert_eq!(whole.stats(), rest.stats());
        prop_assert_eq!(whole.counters(), rest.counters());
        prop_assert_eq!(whole.pending(), rest.pending());
    }

    #[test]
    fn an_engine_split_by_event_id_and_by_account_adds_up_to_one_engine(specs in prop::collection::vec(spec(), 1..80), seed in any::<u64>(), resolvers in 1..4usize, journeys in 1..4usize, long_journey in 1..6usize, liars in prop::collection::vec((0..4usize, 0..4usize, 0..90i64), 0..4), cut in any::<prop::sample::Index>(), copies in prop::collection::vec(any::<prop::sample::Index>(), 0..6), with_dims in any::<bool>()) {
        let dims = if with_dims { "\n[metrics]\ndimensions = [\"campaign\"]\ntop_n = 2\n" } else { "" };
        let config = format!("{HASTY}{FUNNELS}{dims}");
        let config = Config::parse(&config, "t").unwrap();
        let msgs = stream(&specs, &liars, &copies, seed);
        let mut engine = Engine::new(&config).unwrap();
        engine.set_long_journey(long_journey);
        let mut whole = Replayer::with_engine(engine, &config, std::io::sink());
        let mut split = Split::new(&config, resolvers, journeys, long_journey);
        let restart_at = cut.index(msgs.len() + 1);
        for (i, m) in msgs.iter().enumerate() {
            if i == restart_at {
                split.restart(&config);
            }
            whole.message(m.as_bytes(), "t", i as u64).unwrap();
            split.message(m.as_bytes());
            // At every moment, not only at the end: outcomes decided at the same watermark.
            prop_assert_eq!(split.summary(), whole.engine().summary());
        }
        let (expected, whole) = whole.finish(None).unwrap();
        split.finish();
        prop_assert_eq!(split.summary(), expected);
        // Which values get their own label depends on what each resolver saw first (SPEC §5.2
        // allows it: totals over labels never change); with one resolver they are one engine's.
        // So do late corrections, which count changes of the breakdown too.
        if with_dims && resolvers == 1 {
            prop_assert_eq!(split.entries_by_labels(), entries_by_labels(&[&whole]));
        }
        if !with_dims || resolvers == 1 {
            let corrections: u64 = split.journeys.iter().map(|e| e.counters().late_corrections).sum();
            prop_assert_eq!(corrections, whole.counters().late_corrections);
        }
        prop_assert_eq!(split.resolvers.iter().map(Engine::pending).sum::<usize>(), whole.pending());
    }

    #[test]
    fn resolvers_learning_links_from_a_log_add_up_to_one_engine(specs in prop::collection::vec(spec(), 1..80), seed in any::<u64>(), resolvers in 1..4usize, journeys in 1..4usize, liars in prop::collection::vec((0..4usize, 0..4usize, 0..90i64), 0..4), lags in prop::collection::vec(0..6usize, 1..8), cut in any::<prop::sample::Index>(), copies in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        // Links reach each resolver later than in one engine, so only what arrival order may
        // decide can differ (SPEC §4): `late`, and expiry, which patient limits rule out.
        let config = format!("{PATIENT}{FUNNELS}\n[metrics]\ndimensions = [\"campaign\"]\ntop_n = 2\n");
        let config = Config::parse(&config, "t").unwrap();
        // The log keeps the order links were accepted in, so the first link of each kind is
        // one engine's, and so are conflicts.
        let msgs = stream(&specs, &liars, &copies, seed);
        let mut whole = Replayer::with_engine(Engine::new(&config).unwrap(), &config, std::io::sink());
        let mut split = Split::new(&config, resolvers, journeys, 64).with_log(&config, lags);
        let restart_at = cut.index(msgs.len() + 1);
        for (i, m) in msgs.iter().enumerate() {
            if i == restart_at {
                split.restart(&config);
            }
            whole.message(m.as_bytes(), "t", i as u64).unwrap();
            split.message(m.as_bytes());
        }
        let (expected, whole) = whole.finish(None).unwrap();
        split.finish();
        let summary = without_late(split.summary());
        if liars.is_empty() {
            prop_assert_eq!(summary, without_late(expected));
        } else {
            // Links of different kinds that contradict each other (a cookie tied to one account
            // directly and to another through its contact) resolve a touch by whichever it
            // meets first: one engine meets all that came before the touch, a resolver those
            // it has read. Either is a single engine's result for some arrival order (SPEC §4).
            prop_assert_eq!(summary.events, without_late(expected).events);
        }
        prop_assert_eq!(split.resolvers.iter().map(Engine::pending).sum::<usize>(), whole.pending());
    }

    #[test]
    fn account_only_streams_match_the_oracle(specs in prop::collection::vec(spec(), 1..60), seed in any::<u64>()) {
        // Every touch names its account, so the oracle needs no identity logic.
        let specs: Vec<Spec> = specs.into_iter().map(|s| Spec { carrier: 0, identify: false, ..s }).collect();
        let config = format!("{HASTY}{FUNNELS}\n[metrics]\ndimensions = [\"campaign\"]\ntop_n = 2\n");
        let msgs = shuffled(&messages(&specs), seed);
        let summary = replay(&config, &msgs);
        let newest = specs.iter().map(|s| T0 + s.day * DAY + s.jitter).max().unwrap();
        for (f, rules) in [
            (0, OracleRules { stages: 3, windows: vec![10 * DAY, 20 * DAY, 0], timeout: 30 * DAY }),
            (1, OracleRules { stages: 2, windows: vec![3 * DAY, 0], timeout: 7 * DAY }),
        ] {
            let mut accounts: HashMap<String, Vec<OracleTouch>> = HashMap::new();
            for (i, s) in specs.iter().enumerate() {
                let tp = TOUCHPOINTS[s.touchpoint];
                let lost = s.explicit_stage == Some("lost") || (f == 0 && tp == "nope");
                let stage = if lost {
                    None
                } else if f == 0 {
                    match (s.explicit_stage, tp) {
                        (Some("b"), _) => Some(1),
                        (_, "visit" | "webinar") => Some(0),
                        (_, "scan" | "call") => Some(1),
                        (_, "sign") => Some(2),
                        _ => None,
                    }
                } else {
                    match (s.explicit_stage, tp) {
                        (Some("y"), _) => Some(1),
                        (_, "sign") => Some(0),
                        (_, "note") => Some(1),
                        _ => None,
                    }
                };
                accounts.entry(format!("acct{}", s.account)).or_default().push(OracleTouch {
                    time: T0 + s.day * DAY + s.jitter,
                    id: format!("e{i}"),
                    online: matches!(tp, "visit" | "webinar" | "note"),
                    stage,
                    lost,
                });
            }
            assert_funnel_eq(&summary, f, &oracle(&accounts, &rules, newest));
        }
    }
}

#[test]
fn splitting_the_input_across_files_changes_nothing() {
    let specs: Vec<Spec> = (0..300)
        .map(|i| Spec {
            account: i % 7,
            carrier: (i % 5) as u8,
            day: (i as i64 * 37) % 120,
            jitter: 0,
            touchpoint: i % TOUCHPOINTS.len(),
            identify: i % 9 == 0,
            explicit_stage: None,
        })
        .collect();
    let lines = messages(&specs);
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!("{HASTY}{FUNNELS}"), "t").unwrap();
    let write = |name: &str, part: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            part.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        path
    };
    let run = |inputs: Vec<std::path::PathBuf>, out: &str| {
        let options = ReplayOptions {
            inputs,
            summary: dir.path().join(out),
            rejected: None,
            watermark: None,
            progress: false,
            export: None,
        };
        replay::run(&config, &options).unwrap().0
    };
    let whole = run(vec![write("all.jsonl", &lines)], "one.json");
    let parts = vec![
        write("p1.jsonl", &lines[..1]),
        write("p2.jsonl", &lines[1..150]),
        write("p3.jsonl", &[]),
        write("p4.jsonl", &lines[150..]),
    ];
    let split = run(parts, "split.json");
    assert_eq!(whole, split);
    let on_disk: Summary =
        serde_json::from_slice(&std::fs::read(dir.path().join("split.json")).unwrap()).unwrap();
    assert_eq!(on_disk, split);
}
