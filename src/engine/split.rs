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
//! Resolvers can be several, each owning the event ids that hash to it (so dedup sees every
//! copy of an event): each keeps the touches waiting in its events, and every one keeps every
//! link, told by the others in one order ([`Engine::take_links`], [`Engine::apply_links`]),
//! so that each resolves its waiting touches as one engine would. Across processes that order
//! is a links topic (docs/durability.md); here it is the order the caller passes them on.
//!
//! For the result to equal one engine's, whoever connects them keeps one order per event:
//! 1. the resolver owning its id applies it ([`Engine::apply`]; resolvers and journeys
//!    engines all have external watermarks);
//! 2. every other resolver applies its links ([`Engine::take_links`], [`Engine::apply_links`]);
//! 3. the touches they released go to the journeys engines owning their accounts, the owning
//!    resolver's last ([`Engine::take_resolved`], [`Engine::apply_resolved`]): its own touch
//!    comes after the ones its links released, as in one engine, which decides whether a late
//!    one corrected anything;
//! 4. every engine moves to the new watermark, and what that releases is handed on.
//!
//! `tests/properties.rs` drives this over random streams with conflicting links and checks the
//! merged summary against one engine's after every message.
//!
//! Each role counts what it owns: the resolvers every event counter of the summary, the
//! journeys engines the funnels; [`Summary::add`](crate::summary::Summary::add) adds them up.
//! All follow one watermark, the stream's (SPEC §4), which only the caller moves
//! ([`Engine::advance_watermark`]): a touch is placed against the watermark in force when it
//! was released, as in one engine.

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

/// The ids an accepted event carries when it carries two or more, so links between them
/// (SPEC §2): what a resolver tells every other resolver, which keep the same links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkedIds {
    pub account: Option<String>,
    pub contact: Option<String>,
    pub anon: Option<String>,
}

/// What a resolver produced and its caller has not taken yet.
#[derive(Debug, Default)]
pub(super) struct Released {
    /// Touches resolved, in the order one engine would have placed them, with `late`.
    touches: Vec<(u32, Touch, bool)>,
    links: Vec<LinkedIds>,
}

impl Engine {
    /// This engine as a resolver: dedup and identity only. Touches it resolves are kept for
    /// [`Engine::take_resolved`] instead of entering journeys, so its funnels stay empty. Its
    /// watermark is the stream's, which the caller moves.
    pub fn into_resolver(mut self) -> Engine {
        self.released = Some(Released::default());
        self.with_external_watermark()
    }

    /// This engine as a journeys engine: it is fed [`Engine::apply_resolved`] and follows the
    /// resolver's watermark, which only [`Engine::advance_watermark`] moves.
    pub fn into_journeys(self) -> Engine {
        self.with_external_watermark()
    }

    /// In a resolver, notes the ids of an accepted event that links them.
    pub(super) fn note_links(&mut self, event: &crate::event::Event<'_>) {
        let Some(released) = &mut self.released else {
            return;
        };
        let ids = [&event.account_id, &event.contact_id, &event.anonymous_id];
        if ids.iter().filter(|id| id.is_some()).count() >= 2 {
            released.links.push(LinkedIds {
                account: event.account_id.as_deref().map(str::to_string),
                contact: event.contact_id.as_deref().map(str::to_string),
                anon: event.anonymous_id.as_deref().map(str::to_string),
            });
        }
    }

    /// The linking ids of the events this resolver accepted since the last call, in order.
    pub fn take_links(&mut self) -> Vec<LinkedIds> {
        self.released
            .as_mut()
            .map(|r| std::mem::take(&mut r.links))
            .unwrap_or_default()
    }

    /// Records links another resolver's event carried, as that resolver did: every resolver
    /// keeps every link, in one order, so each resolves its own waiting touches as one engine
    /// would. A conflict is counted by the resolver that accepted the event, not here.
    pub fn apply_links(&mut self, linked: &LinkedIds) {
        let arena = &mut self.arena;
        let ids = super::identity::Ids {
            account: linked
                .account
                .as_deref()
                .map(|a| self.accounts.intern(arena, a.as_bytes())),
            contact: linked
                .contact
                .as_deref()
                .map(|c| self.identity.contact(arena, c.as_bytes())),
            anon: linked
                .anon
                .as_deref()
                .map(|a| self.identity.anon(arena, a.as_bytes())),
        };
        let conflicts = self.identity.conflicts;
        let mut joined = std::mem::take(&mut self.joined);
        self.identity.link(ids, &mut joined, &mut self.touch_ids);
        for (account, touch) in joined.drain(..) {
            self.insert_touch(account, touch, false);
        }
        self.joined = joined;
        self.identity.conflicts = conflicts;
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
