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
//! is a links topic (docs/durability.md): a *log resolver* ([`Engine::into_log_resolver`])
//! learns every link, its own too, only by reading that log, possibly behind its end, and
//! counts a conflict when its own record comes back behind a contradicting one. Nothing
//! else is lost by the delay: an event's new links never resolve its own touch further than
//! its ids and the links known before it do. What the delay can change is what arrival order
//! may change (SPEC §4): `late`, expiry, and where links of different kinds contradict each
//! other, which one a waiting touch meets first.
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
use crate::codec::{Reader, Writer};
use crate::event::MAX_ID_BYTES;
use crate::funnel::Touch;
use crate::time::{Millis, accepted};

/// First byte of every record, so that a later format is told apart.
const RECORD_FORMAT: u8 = 1;

/// A touch whose account is known, as the resolver hands it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTouch {
    pub account: String,
    pub event_id: String,
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

impl ResolvedTouch {
    /// The record that carries it between processes: the snapshot codec, values only.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u8(RECORD_FORMAT);
        w.bytes(self.account.as_bytes());
        w.bytes(self.event_id.as_bytes());
        w.i64(self.time);
        w.u16(self.kind);
        w.u8(u8::from(self.online) | u8::from(self.late) << 1);
        w.len(self.labels.len());
        for label in &self.labels {
            w.bytes(label.as_bytes());
        }
    }

    /// Reads what [`ResolvedTouch::encode`] wrote; anything else is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<ResolvedTouch, String> {
        let mut r = Reader::new(bytes);
        r.section("resolved touch");
        let touch = (|| {
            format(&mut r)?;
            let account = text(&mut r)?;
            let event_id = text(&mut r)?;
            let time = r.i64()?;
            let kind = r.u16()?;
            let flags = r.u8()?;
            if flags > 3 {
                return Err(r.corrupt(format_args!("flags {flags}")));
            }
            let labels = (0..r.len(8)?)
                .map(|_| text(&mut r))
                .collect::<Result<_, _>>()?;
            r.finish()?;
            Ok(ResolvedTouch {
                account,
                event_id,
                time,
                kind,
                online: flags & 1 != 0,
                labels,
                late: flags & 2 != 0,
            })
        })();
        touch.map_err(|e| e.to_string())
    }
}

impl LinkedIds {
    /// The record that carries them between processes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u8(RECORD_FORMAT);
        for id in [&self.account, &self.contact, &self.anon] {
            w.bool(id.is_some());
            w.bytes(id.as_deref().unwrap_or_default().as_bytes());
        }
    }

    /// Reads what [`LinkedIds::encode`] wrote; anything else is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<LinkedIds, String> {
        let mut r = Reader::new(bytes);
        r.section("linked ids");
        let linked = (|| {
            format(&mut r)?;
            let mut ids = [None, None, None];
            for id in &mut ids {
                let present = r.bool()?;
                let value = text(&mut r)?;
                *id = present.then_some(value);
            }
            r.finish()?;
            let [account, contact, anon] = ids;
            Ok(LinkedIds {
                account,
                contact,
                anon,
            })
        })();
        linked.map_err(|e: super::SnapshotError| e.to_string())
    }
}

fn format(r: &mut Reader<'_>) -> Result<(), super::SnapshotError> {
    match r.u8()? {
        RECORD_FORMAT => Ok(()),
        other => Err(r.corrupt(format_args!(
            "record format {other}, this build reads {RECORD_FORMAT}"
        ))),
    }
}

fn text(r: &mut Reader<'_>) -> Result<String, super::SnapshotError> {
    let bytes = r.bytes()?;
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| r.corrupt("text that is not UTF-8"))
}

/// What a resolver produced and its caller has not taken yet.
#[derive(Debug, Default)]
pub(super) struct Released {
    /// Touches resolved, in the order one engine would have placed them, with `late`.
    touches: Vec<(u32, Touch, bool)>,
    links: Vec<LinkedIds>,
    /// Links come from the log only, own ones included ([`Engine::into_log_resolver`]).
    by_log: bool,
}

impl Released {
    pub(super) fn is_empty(&self) -> bool {
        self.touches.is_empty() && self.links.is_empty()
    }

    pub(super) fn by_log(&self) -> bool {
        self.by_log
    }
}

impl Engine {
    /// This engine as a resolver: dedup and identity only. Touches it resolves are kept for
    /// [`Engine::take_resolved`] instead of entering journeys, so its funnels stay empty. Its
    /// watermark is the stream's, which the caller moves.
    pub fn into_resolver(mut self) -> Engine {
        self.released = Some(Released::default());
        self.with_external_watermark()
    }

    /// In the resolver role, links set at once (not a log resolver): what stage B restores.
    pub fn is_resolver(&self) -> bool {
        self.released.as_ref().is_some_and(|r| !r.by_log)
    }

    /// Fed from outside in both watermark and touches, and not a resolver: what stage C
    /// restores.
    pub fn is_journeys(&self) -> bool {
        self.external_watermark && self.released.is_none()
    }

    /// This engine as a journeys engine: it is fed [`Engine::apply_resolved`] and follows the
    /// resolver's watermark, which only [`Engine::advance_watermark`] moves.
    pub fn into_journeys(self) -> Engine {
        self.with_external_watermark()
    }

    /// This engine as a resolver that learns every link, its own included, only from the
    /// links log ([`Engine::apply_links`]), as resolvers in several processes do: the caller
    /// appends what [`Engine::take_links`] gives to the log, and feeds the log back to every
    /// resolver in its order.
    pub fn into_log_resolver(self) -> Engine {
        let mut engine = self.into_resolver();
        if let Some(released) = &mut engine.released {
            released.by_log = true;
        }
        engine
    }

    /// In a resolver, notes the ids of an accepted event that links them. Whether the links
    /// are left to the log (a log resolver) rather than recorded at once.
    pub(super) fn note_links(&mut self, event: &crate::event::Event<'_>) -> bool {
        let Some(released) = &mut self.released else {
            return false;
        };
        let ids = [&event.account_id, &event.contact_id, &event.anonymous_id];
        if ids.iter().filter(|id| id.is_some()).count() >= 2 {
            released.links.push(LinkedIds {
                account: event.account_id.as_deref().map(str::to_string),
                contact: event.contact_id.as_deref().map(str::to_string),
                anon: event.anonymous_id.as_deref().map(str::to_string),
            });
        }
        released.by_log
    }

    /// The linking ids of the events this resolver accepted since the last call, in order.
    pub fn take_links(&mut self) -> Vec<LinkedIds> {
        self.released
            .as_mut()
            .map(|r| std::mem::take(&mut r.links))
            .unwrap_or_default()
    }

    /// Records links an event carried: every resolver keeps every link, in one order, so each
    /// resolves its own waiting touches as one engine would. `own` when this resolver accepted
    /// the event. A conflict is counted once, by that resolver: when it accepts the event, or
    /// in a log resolver when its own record comes back from the log.
    pub fn apply_links(&mut self, linked: &LinkedIds, own: bool) {
        let ids = self.intern(
            linked.account.as_deref(),
            linked.contact.as_deref(),
            linked.anon.as_deref(),
        );
        self.link(ids, own && self.released.as_ref().is_some_and(|r| r.by_log));
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
    /// A resolver's caller takes them (and [`Engine::take_links`]) after every event it
    /// applies and every watermark move, and before a snapshot, which does not hold them.
    pub fn take_resolved(&mut self) -> Vec<ResolvedTouch> {
        let Some(released) = &mut self.released else {
            return Vec::new();
        };
        let out = released
            .touches
            .drain(..)
            .map(|(account, touch, late)| ResolvedTouch {
                account: self.accounts.name(&self.arena, account),
                event_id: self.touch_ids.touch_string(touch.id()),
                time: touch.time(),
                kind: touch.kind(),
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
        self.touch_ids.clear();
        out
    }

    /// Places a touch a resolver released (a journeys engine's only input). One whose kind or
    /// labels this engine cannot read came from an engine with other funnels or dimensions,
    /// and is refused; so is one with a time no event may have (a touch could not hold it).
    pub fn apply_resolved(&mut self, resolved: &ResolvedTouch) -> Result<(), String> {
        if usize::from(resolved.kind) >= self.funnels.kinds() {
            return Err(format!(
                "touch {:?} has kind {}, these funnels have {} kinds: the resolver runs \
                 with other funnels",
                resolved.event_id,
                resolved.kind,
                self.funnels.kinds()
            ));
        }
        if !accepted(resolved.time) {
            return Err(format!(
                "touch {:?} has time {}, outside the years 0000 to 9999 (SPEC §1)",
                resolved.event_id, resolved.time
            ));
        }
        if resolved.event_id.is_empty() || resolved.event_id.len() > MAX_ID_BYTES {
            return Err(format!(
                "touch event id of {} bytes: ids have 1 to {MAX_ID_BYTES} (SPEC §1)",
                resolved.event_id.len()
            ));
        }
        if resolved.labels.len() != self.dims.dimensions().len() {
            return Err(format!(
                "touch {:?} has {} breakdown labels, this engine has {} dimensions: the \
                 resolver runs with other [metrics] dimensions",
                resolved.event_id,
                resolved.labels.len(),
                self.dims.dimensions().len()
            ));
        }
        let account = self
            .accounts
            .intern(&mut self.arena, resolved.account.as_bytes());
        self.id.set(resolved.event_id.as_bytes());
        let id = self.touch_ids.keep(&self.id);
        let dims = self.dims.code_labels(&resolved.labels);
        let touch = Touch::new(resolved.time, id, resolved.kind, resolved.online, dims);
        self.insert_touch(account, touch, resolved.late);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop::string::string_regex("[a-z0-9é-]{0,12}").unwrap()
    }

    fn resolved() -> impl Strategy<Value = ResolvedTouch> {
        (
            text(),
            text(),
            any::<i64>(),
            any::<u16>(),
            any::<bool>(),
            prop::collection::vec(text(), 0..4),
            any::<bool>(),
        )
            .prop_map(|(account, event_id, time, kind, online, labels, late)| {
                ResolvedTouch {
                    account,
                    event_id,
                    time,
                    kind,
                    online,
                    labels,
                    late,
                }
            })
    }

    fn linked() -> impl Strategy<Value = LinkedIds> {
        (
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
        )
            .prop_map(|(account, contact, anon)| LinkedIds {
                account,
                contact,
                anon,
            })
    }

    proptest! {
        #[test]
        fn records_read_back_what_was_written_and_refuse_any_cut(touch in resolved(), ids in linked()) {
            let mut bytes = Vec::new();
            touch.encode(&mut bytes);
            prop_assert_eq!(ResolvedTouch::decode(&bytes), Ok(touch));
            for cut in 0..bytes.len() {
                prop_assert!(ResolvedTouch::decode(&bytes[..cut]).is_err());
            }
            let mut bytes = Vec::new();
            ids.encode(&mut bytes);
            prop_assert_eq!(LinkedIds::decode(&bytes), Ok(ids));
            for cut in 0..bytes.len() {
                prop_assert!(LinkedIds::decode(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn random_bytes_are_an_error_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            let _ = ResolvedTouch::decode(&bytes);
            let _ = LinkedIds::decode(&bytes);
        }
    }

    #[test]
    fn a_touch_from_other_funnels_or_dimensions_is_refused() {
        let mut engine =
            super::super::tests::engine_with(super::super::tests::CONFIG).into_journeys();
        let good = ResolvedTouch {
            account: "a".into(),
            event_id: "e1".into(),
            time: 0,
            kind: 0,
            online: true,
            labels: Vec::new(),
            late: false,
        };
        assert_eq!(engine.apply_resolved(&good), Ok(()));
        let kind = ResolvedTouch {
            kind: u16::MAX,
            ..good.clone()
        };
        assert!(
            engine
                .apply_resolved(&kind)
                .unwrap_err()
                .contains("other funnels")
        );
        let labels = ResolvedTouch {
            labels: vec!["x".into()],
            ..good.clone()
        };
        assert!(
            engine
                .apply_resolved(&labels)
                .unwrap_err()
                .contains("dimensions")
        );
        let id = ResolvedTouch {
            event_id: "x".repeat(300),
            ..good.clone()
        };
        assert!(engine.apply_resolved(&id).unwrap_err().contains("SPEC §1"));
        for time in [crate::time::MAX_MILLIS + 1, i64::MIN] {
            let outside = ResolvedTouch {
                time,
                ..good.clone()
            };
            assert!(
                engine
                    .apply_resolved(&outside)
                    .unwrap_err()
                    .contains("0000 to 9999")
            );
        }
        // Nothing of the refused ones went in.
        assert_eq!(engine.state_sizes().touches, 1);
    }
}
