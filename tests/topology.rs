//! Scale-out's stages (`spiral::topology`) with every crash their topics allow, against one
//! engine that reads the same input once: forwarders that forward again after a restart, a
//! resolver stage that loses what it had not delivered and restarts from its checkpoint, and
//! journeys partitions that restart from theirs. The merged summary must equal the engine's
//! whenever everything has been read, and at the end.

mod common;

use std::collections::BTreeMap;

use common::streams::*;
use proptest::prelude::*;
use spiral::config::Config;
use spiral::engine::{Applied, Engine, watermark};
use spiral::event::Decoder;
use spiral::summary::Summary;
use spiral::topology::{EventsRecord, Outgoing, Place, Resolve, Source, TouchesRecord};

/// What happens next, chosen at random.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Forwarder of input partition `n % inputs` forwards its next message.
    Forward(usize),
    /// …stores its consumer offset: a restart forwards from there.
    Commit(usize),
    /// …restarts.
    ForwarderRestarts(usize),
    /// …finds its partition quiet.
    Idle(usize),
    /// Stage B reads a record.
    Resolve,
    /// Stage B's producer delivers what it wrote.
    Deliver,
    /// Stage B pauses: the watermark goes to every partition.
    Pause,
    /// Stage B delivers, then checkpoints.
    CheckpointB,
    /// Stage B restarts from its last checkpoint; what it had not delivered is lost.
    RestartB,
    /// Journeys partition `n % partitions` reads a record.
    Place(usize),
    CheckpointC(usize),
    RestartC(usize),
    /// Everything is read to the end: the merged summary must equal the engine's.
    Drain,
}

fn step() -> impl Strategy<Value = Step> {
    let n = 0..8usize;
    prop_oneof![
        8 => n.clone().prop_map(Step::Forward),
        2 => n.clone().prop_map(Step::Commit),
        1 => n.clone().prop_map(Step::ForwarderRestarts),
        1 => n.clone().prop_map(Step::Idle),
        8 => Just(Step::Resolve),
        3 => Just(Step::Deliver),
        1 => Just(Step::Pause),
        1 => Just(Step::CheckpointB),
        1 => Just(Step::RestartB),
        8 => n.clone().prop_map(Step::Place),
        1 => n.clone().prop_map(Step::CheckpointC),
        1 => n.clone().prop_map(Step::RestartC),
        1 => Just(Step::Drain),
    ]
}

const TOPIC: &str = "touchpoints";

struct Journeys {
    place: Place,
    /// Next offset to read in its partition, and the checkpoint (state, offset).
    at: usize,
    checkpoint: Option<(Vec<u8>, usize)>,
}

struct Topology {
    config: Config,
    inputs: Vec<Vec<String>>,
    /// Per input partition: the next message to forward, and the stored offset.
    forwarded: Vec<usize>,
    committed: Vec<usize>,
    events: Vec<Vec<u8>>,
    resolve: Resolve,
    resolve_at: usize,
    undelivered: Vec<Outgoing>,
    resolve_checkpoint: Option<(Vec<u8>, usize)>,
    touches: Vec<Vec<Vec<u8>>>,
    journeys: Vec<Journeys>,
    /// The engine that reads every forwarded message once, in the order of `spiral.events`.
    whole: Whole,
}

impl Topology {
    fn new(config: Config, inputs: Vec<Vec<String>>, partitions: usize) -> Topology {
        let journeys = (0..partitions)
            .map(|_| Journeys {
                place: Place::new(&config).unwrap(),
                at: 0,
                checkpoint: None,
            })
            .collect();
        Topology {
            resolve: Resolve::new(&config, partitions as u32).unwrap(),
            whole: Whole::new(&config),
            forwarded: vec![0; inputs.len()],
            committed: vec![0; inputs.len()],
            inputs,
            events: Vec::new(),
            resolve_at: 0,
            undelivered: Vec::new(),
            resolve_checkpoint: None,
            touches: vec![Vec::new(); partitions],
            journeys,
            config,
        }
    }

    fn forward(&mut self, p: usize) {
        let Some(message) = self.inputs[p].get(self.forwarded[p]) else {
            return;
        };
        let mut record = Vec::new();
        EventsRecord::Message {
            source: source(p),
            offset: self.forwarded[p] as i64,
            bytes: message.as_bytes(),
        }
        .encode(&mut record);
        self.events.push(record);
        self.forwarded[p] += 1;
    }

    fn idle(&mut self, p: usize) {
        let mut record = Vec::new();
        EventsRecord::Idle { source: source(p) }.encode(&mut record);
        self.events.push(record);
    }

    fn resolve(&mut self) {
        let Some(record) = self.events.get(self.resolve_at) else {
            return;
        };
        let record = EventsRecord::decode(record).unwrap();
        self.resolve
            .read(self.resolve_at as i64, &record, &mut self.undelivered);
        self.resolve_at += 1;
    }

    fn deliver(&mut self) {
        for out in self.undelivered.drain(..) {
            self.touches[out.partition as usize].push(out.record);
        }
    }

    fn checkpoint_b(&mut self) {
        self.deliver();
        let mut state = Vec::new();
        self.resolve.snapshot(&mut state);
        self.resolve_checkpoint = Some((state, self.resolve_at));
    }

    fn restart_b(&mut self) {
        let partitions = self.journeys.len() as u32;
        self.undelivered.clear();
        (self.resolve, self.resolve_at) = match &self.resolve_checkpoint {
            Some((state, at)) => (
                Resolve::restore(&self.config, partitions, state).unwrap(),
                *at,
            ),
            None => (Resolve::new(&self.config, partitions).unwrap(), 0),
        };
    }

    fn place(&mut self, q: usize) {
        let journeys = &mut self.journeys[q];
        let Some(record) = self.touches[q].get(journeys.at) else {
            return;
        };
        journeys
            .place
            .read(&TouchesRecord::decode(record).unwrap())
            .unwrap();
        journeys.at += 1;
    }

    fn checkpoint_c(&mut self, q: usize) {
        let journeys = &mut self.journeys[q];
        let mut state = Vec::new();
        journeys.place.snapshot(&mut state);
        journeys.checkpoint = Some((state, journeys.at));
    }

    fn restart_c(&mut self, q: usize) {
        let journeys = &mut self.journeys[q];
        (journeys.place, journeys.at) = match &journeys.checkpoint {
            Some((state, at)) => (Place::restore(&self.config, state).unwrap(), *at),
            None => (Place::new(&self.config).unwrap(), 0),
        };
    }

    /// Reads every topic to its end (inputs are not forwarded further).
    fn drain(&mut self) {
        while self.resolve_at < self.events.len() {
            self.resolve();
        }
        self.resolve.flush(&mut self.undelivered);
        self.deliver();
        for q in 0..self.journeys.len() {
            while self.journeys[q].at < self.touches[q].len() {
                self.place(q);
            }
        }
        self.whole.read(&self.events);
    }

    fn run(&mut self, step: Step) {
        let inputs = self.inputs.len();
        let partitions = self.journeys.len();
        match step {
            Step::Forward(n) => self.forward(n % inputs),
            Step::Commit(n) => self.committed[n % inputs] = self.forwarded[n % inputs],
            Step::ForwarderRestarts(n) => {
                let p = n % inputs;
                self.forwarded[p] = self.committed[p];
                let mut record = Vec::new();
                EventsRecord::Assigned { source: source(p) }.encode(&mut record);
                self.events.push(record);
            }
            Step::Idle(n) => self.idle(n % inputs),
            Step::Resolve => self.resolve(),
            Step::Deliver => self.deliver(),
            Step::Pause => self.resolve.flush(&mut self.undelivered),
            Step::CheckpointB => self.checkpoint_b(),
            Step::RestartB => self.restart_b(),
            Step::Place(n) => self.place(n % partitions),
            Step::CheckpointC(n) => self.checkpoint_c(n % partitions),
            Step::RestartC(n) => self.restart_c(n % partitions),
            Step::Drain => self.drain(),
        }
    }

    /// Every message forwarded, every partition idle at last, every topic read, and the end
    /// of input (the watermark to the newest event time).
    fn finish(&mut self) {
        for p in 0..self.inputs.len() {
            while self.forwarded[p] < self.inputs[p].len() {
                self.forward(p);
            }
            self.idle(p);
        }
        self.drain();
        self.resolve.finish(&mut self.undelivered);
        self.deliver();
        self.drain();
        self.whole.engine.finish();
    }

    fn summary(&self) -> Summary {
        let mut summary = self.resolve.engine().summary();
        for journeys in &self.journeys {
            summary.add(&journeys.place.engine().summary()).unwrap();
        }
        summary
    }

    fn late_corrections(&self) -> u64 {
        self.journeys
            .iter()
            .map(|j| j.place.engine().counters().late_corrections)
            .sum()
    }
}

fn source(p: usize) -> Source<'static> {
    Source {
        topic: TOPIC,
        partition: p as i32,
    }
}

/// One engine in its usual role reading `spiral.events` once: each input message the first
/// time it appears, the watermark from the input partitions as SPEC §4 has it.
struct Whole {
    engine: Engine,
    decoder: Decoder,
    allowed_lateness: i64,
    /// Records read, and per input partition the next offset, newest event time, idleness.
    read: usize,
    inputs: BTreeMap<i32, (i64, Option<i64>, bool)>,
}

impl Whole {
    fn new(config: &Config) -> Whole {
        Whole {
            engine: Engine::new(config).unwrap().with_external_watermark(),
            decoder: Decoder::new(
                config.pipeline.max_event_bytes,
                config.touchpoints.iter().cloned(),
            ),
            allowed_lateness: config.pipeline.allowed_lateness,
            read: 0,
            inputs: BTreeMap::new(),
        }
    }

    fn read(&mut self, events: &[Vec<u8>]) {
        for record in &events[self.read..] {
            match EventsRecord::decode(record).unwrap() {
                EventsRecord::Idle { source } => {
                    self.inputs
                        .entry(source.partition)
                        .or_insert((0, None, false))
                        .2 = true;
                }
                EventsRecord::Assigned { source } => {
                    self.inputs
                        .entry(source.partition)
                        .or_insert((0, None, false))
                        .2 = false;
                }
                EventsRecord::Message {
                    source,
                    offset,
                    bytes,
                } => {
                    let input = self
                        .inputs
                        .entry(source.partition)
                        .or_insert((0, None, false));
                    if offset < input.0 {
                        continue;
                    }
                    *input = (offset + 1, input.1, false);
                    match self.decoder.decode(bytes) {
                        Err(rejection) => self.engine.reject(rejection.reason),
                        Ok(event) => {
                            if let Applied::Accepted { .. } = self.engine.apply(&event) {
                                let newest = &mut self.inputs.get_mut(&source.partition).unwrap().1;
                                *newest = (*newest).max(Some(event.occurred_at));
                            }
                        }
                    }
                }
            }
            if let Some(time) = watermark::event_time(self.inputs.values().map(|i| (i.1, i.2))) {
                self.engine.advance_watermark(time - self.allowed_lateness);
            }
        }
        self.read = events.len();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_stages_with_every_crash_add_up_to_one_engine(
        specs in prop::collection::vec(spec(), 1..80),
        liars in prop::collection::vec((0..4usize, 0..4usize, 0..90i64), 0..4),
        copies in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        seed in any::<u64>(),
        inputs in 1..4usize,
        partitions in 1..4usize,
        with_dims in any::<bool>(),
        steps in prop::collection::vec(step(), 0..400),
    ) {
        let dims = if with_dims { "\n[metrics]\ndimensions = [\"campaign\"]\ntop_n = 2\n" } else { "" };
        let config = Config::parse(&format!("{HASTY}{FUNNELS}{dims}"), "t").unwrap();
        // Producers key by whatever id they have: any message may sit on any partition.
        let msgs = stream(&specs, &liars, &copies, seed);
        let mut split: Vec<Vec<String>> = vec![Vec::new(); inputs];
        for (i, m) in msgs.into_iter().enumerate() {
            split[(seed as usize).wrapping_add(i * 7) % inputs % inputs.max(1)].push(m);
        }
        let mut topology = Topology::new(config, split, partitions);
        for step in steps {
            topology.run(step);
            if let Step::Drain = step {
                prop_assert_eq!(topology.summary(), topology.whole.engine.summary());
            }
        }
        topology.finish();
        let whole = &topology.whole.engine;
        prop_assert_eq!(topology.summary(), whole.summary());
        prop_assert_eq!(topology.late_corrections(), whole.counters().late_corrections);
        prop_assert_eq!(topology.resolve.engine().pending(), whole.pending());
        if with_dims {
            let parts: Vec<&Engine> = topology.journeys.iter().map(|j| j.place.engine()).collect();
            prop_assert_eq!(entries_by_labels(&parts), entries_by_labels(&[whole]));
        }
    }
}
