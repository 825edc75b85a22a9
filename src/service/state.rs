//! What the consumer thread and the HTTP handlers share.
//!
//! The consumer thread owns the Kafka clients and applies a batch of messages under the engine
//! lock; handlers take the same lock briefly to read the summary, an account or the metrics.
//! Lock order, where two are held: engine, then partitions, then costs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::engine::Engine;
use crate::event::Channel;
use crate::time::Millis;

use super::dlq::DlqCounters;
use super::partitions::Partitions;

pub struct Shared {
    pub engine: Mutex<Engine>,
    pub partitions: Mutex<Partitions>,
    pub costs: Mutex<Costs>,
    pub dlq: DlqCounters,
    pub allowed_lateness: Millis,
    /// Partitions are assigned and a poll has completed since.
    pub ready: AtomicBool,
    /// A graceful stop was asked for: finish the batch in hand, commit, leave.
    pub stopping: AtomicBool,
    /// The consumer thread has ended (normally or not).
    pub stopped: AtomicBool,
}

impl Shared {
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn partitions(&self) -> MutexGuard<'_, Partitions> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn costs(&self) -> MutexGuard<'_, Costs> {
        self.costs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// The `cost` of accepted touches by channel and campaign (`spiral_touchpoint_cost_total`).
///
/// Campaigns are a bounded label: the first `top_n` distinct campaigns seen get their own
/// value, later ones are counted as `other`, touches without one as `none`.
#[derive(Debug)]
pub struct Costs {
    campaigns: TopN,
    totals: HashMap<(Channel, u32), f64>,
}

impl Costs {
    pub fn new(top_n: usize) -> Costs {
        Costs {
            campaigns: TopN::new(top_n),
            totals: HashMap::new(),
        }
    }

    pub fn add(&mut self, channel: Channel, campaign: Option<&str>, cost: f64) {
        let label = self.campaigns.code(campaign);
        *self.totals.entry((channel, label)).or_default() += cost;
    }

    /// (channel, campaign label, total), sorted for a stable scrape.
    pub fn totals(&self) -> Vec<(Channel, &str, f64)> {
        let mut rows: Vec<_> = self
            .totals
            .iter()
            .map(|(&(channel, code), &total)| (channel, self.campaigns.name(code), total))
            .collect();
        rows.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        rows
    }
}

/// Bounded label values: the first `max` distinct values keep their name.
#[derive(Debug)]
pub struct TopN {
    max: usize,
    codes: HashMap<String, u32>,
    names: Vec<String>,
}

impl TopN {
    pub const NONE: u32 = 0;
    pub const OTHER: u32 = 1;

    pub fn new(max: usize) -> TopN {
        TopN {
            max,
            codes: HashMap::new(),
            names: vec!["none".to_string(), "other".to_string()],
        }
    }

    pub fn code(&mut self, value: Option<&str>) -> u32 {
        let Some(value) = value else {
            return TopN::NONE;
        };
        if let Some(&code) = self.codes.get(value) {
            return code;
        }
        if self.codes.len() >= self.max {
            return TopN::OTHER;
        }
        let code = self.names.len() as u32;
        self.names.push(value.to_string());
        self.codes.insert(value.to_string(), code);
        code
    }

    pub fn name(&self, code: u32) -> &str {
        &self.names[code as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_bounds_the_labels() {
        let mut top = TopN::new(2);
        assert_eq!(top.code(None), TopN::NONE);
        let a = top.code(Some("spring"));
        let b = top.code(Some("summer"));
        assert_eq!(top.code(Some("autumn")), TopN::OTHER);
        assert_eq!(top.code(Some("spring")), a);
        assert_eq!((top.name(a), top.name(b)), ("spring", "summer"));
        assert_eq!(top.name(TopN::OTHER), "other");
    }

    #[test]
    fn costs_add_up_by_channel_and_campaign() {
        let mut costs = Costs::new(1);
        costs.add(Channel::Online, Some("spring"), 2.5);
        costs.add(Channel::Online, Some("spring"), 1.0);
        costs.add(Channel::Online, Some("summer"), 4.0);
        costs.add(Channel::Offline, None, 100.0);
        assert_eq!(
            costs.totals(),
            vec![
                (Channel::Offline, "none", 100.0),
                (Channel::Online, "other", 4.0),
                (Channel::Online, "spring", 3.5),
            ]
        );
    }
}
