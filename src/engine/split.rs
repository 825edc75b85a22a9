//! The engine split at its two keys, the first step of scale-out (docs/durability.md):
//! a *resolver* does dedup and identity for events of any account, and hands each touch it
//! resolves to the *journeys* engine that owns its account, which builds journeys, outcomes
//! and funnel counters. One [`Engine`] in its usual role does both in one place; the split
//! lets journeys be partitioned by account while the resolver keeps one order of links.
//!
//! What crosses between them is a [`ResolvedTouch`]: values, not this engine's codes (its
//! account index, label codes), so that another process can take it. The kind number is the
//! one exception: it is a pure function of the funnels configuration, which every instance
//! must share (a snapshot checks it).
//!
//! Each role counts what it owns: the resolver every event counter of the summary, the
//! journeys engines the funnels; [`Summary::merge`](crate::summary::Summary::merge) adds
//! them up. The journeys engines follow the resolver's watermark ([`Engine::advance_watermark`]
//! after every event it applies): a touch is placed against the watermark in force when the
//! resolver released it, as in one engine.

use super::Engine;
use crate::funnel::Touch;
use crate::time::Millis;

/// A touch whose account is known, as the resolver hands it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTouch {
    pub account: String,
    /// The event id in its stored encoding (equal ids, equal bytes; ties in time are ordered
    /// by it, so both sides must store the same bytes).
    pub event_id: Vec<u8>,
    pub time: Millis,
    /// Touchpoint kind × explicit stage in the numbering of the shared funnels configuration.
    pub kind: u16,
    pub online: bool,
    /// Its breakdown label values in dimension order (`none`, `other` included).
    pub labels: Vec<String>,
    /// Read after the watermark had passed its time: the journeys engine counts the late
    /// correction it makes, if any.
    pub late: bool,
}

/// Touches a resolver released, in the order one engine would have placed them.
#[derive(Debug, Default)]
pub(super) struct Released {
    touches: Vec<(u32, Touch, bool)>,
}

impl Engine {
    /// This engine as a resolver: dedup and identity only. Touches it resolves are kept for
    /// [`Engine::take_resolved`] instead of entering journeys, so its funnels stay empty.
    pub fn into_resolver(mut self) -> Engine {
        self.released = Some(Released::default());
        self
    }

    /// This engine as a journeys engine: it is fed [`Engine::apply_resolved`] and follows the
    /// resolver's watermark, which only [`Engine::advance_watermark`] moves.
    pub fn into_journeys(self) -> Engine {
        self.with_external_watermark()
    }

    /// Where [`Engine::insert_touch`] goes in a resolver; `false` in any other role.
    pub(super) fn release(&mut self, account: u32, touch: Touch, late: bool) -> bool {
        match &mut self.released {
            Some(released) => {
                released.touches.push((account, touch, late));
                true
            }
            None => false,
        }
    }

    /// The touches resolved since the last call, as values, in the order they were resolved.
    /// A resolver's caller takes them after every event it applies and every watermark move.
    pub fn take_resolved(&mut self) -> Vec<ResolvedTouch> {
        let Some(released) = &mut self.released else {
            return Vec::new();
        };
        let out = released
            .touches
            .drain(..)
            .map(|(account, touch, late)| ResolvedTouch {
                account: self.accounts.name(&self.arena, account).to_string(),
                event_id: self.touch_ids.encoded(touch.id).to_vec(),
                time: touch.time,
                kind: touch.kind,
                online: touch.flags & Touch::ONLINE != 0,
                labels: self
                    .dims
                    .labels(touch.dims)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
                late,
            })
            .collect();
        // Nothing else points into a resolver's touch ids: its accounts hold no touches.
        self.touch_ids = super::event_ids::EventIds::default();
        out
    }

    /// Places a touch a resolver released (a journeys engine's only input).
    pub fn apply_resolved(&mut self, resolved: &ResolvedTouch) {
        let account = self
            .accounts
            .intern(&mut self.arena, resolved.account.as_bytes());
        let id = self.touch_ids.push_stored(&resolved.event_id);
        let dims = self.dims.code_labels(&resolved.labels);
        let touch = Touch::new(resolved.time, id, resolved.kind, resolved.online, dims);
        self.insert_touch(account, touch, resolved.late);
    }
}
