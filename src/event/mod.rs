//! Touchpoint events: what one Kafka message or replay line means (SPEC §1).
//!
//! `decode` turns raw bytes into an [`Event`] or a [`Rejection`] with exactly one
//! [`RejectReason`]; nothing else in Spiral looks at raw message bytes.

mod decode;
mod json;

pub use decode::{Decoder, MAX_ID_BYTES};

use std::borrow::Cow;
use std::fmt;

use crate::time::Millis;

/// `type` of an event (SPEC §1): touches feed funnels, identify events only link ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Touch,
    Identify,
}

/// Online or offline: the two sides of the spiral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Online,
    Offline,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Online => "online",
            Channel::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "online" => Some(Channel::Online),
            "offline" => Some(Channel::Offline),
            _ => None,
        }
    }
}

/// An accepted event. Strings borrow from the message unless they held escapes.
///
/// Absent, `null` and (for ids and `touchpoint`) empty values are all `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    pub event_type: EventType,
    /// Event time, UTC, truncated to whole milliseconds.
    pub occurred_at: Millis,
    pub account_id: Option<Cow<'a, str>>,
    pub contact_id: Option<Cow<'a, str>>,
    pub anonymous_id: Option<Cow<'a, str>>,
    /// Always `Some` for a touch.
    pub touchpoint: Option<Cow<'a, str>>,
    /// Always `Some` for a touch: the explicit channel, else the touchpoint kind's default.
    /// For an identify event, the explicit channel if it was a valid one.
    pub channel: Option<Channel>,
    pub stage: Option<Cow<'a, str>>,
    pub campaign: Option<Cow<'a, str>>,
    pub source: Option<Cow<'a, str>>,
    pub cost: Option<f64>,
    pub revenue: Option<f64>,
    /// In message order; keys are unique.
    pub attributes: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl Event<'_> {
    /// How many of the three ids the event carries.
    pub fn id_count(&self) -> usize {
        [&self.account_id, &self.contact_id, &self.anonymous_id]
            .iter()
            .filter(|id| id.is_some())
            .count()
    }
}

/// Why an event was rejected. The order of the variants is the precedence of SPEC §1:
/// when several rules are broken, the first one here is the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    Oversized,
    Malformed,
    MissingField,
    InvalidTimestamp,
    InvalidChannel,
    NoIdentity,
}

impl RejectReason {
    pub const ALL: [RejectReason; 6] = [
        RejectReason::Oversized,
        RejectReason::Malformed,
        RejectReason::MissingField,
        RejectReason::InvalidTimestamp,
        RejectReason::InvalidChannel,
        RejectReason::NoIdentity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Oversized => "oversized",
            RejectReason::Malformed => "malformed",
            RejectReason::MissingField => "missing_field",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::InvalidChannel => "invalid_channel",
            RejectReason::NoIdentity => "no_identity",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected message: the reason, and a short human explanation for the dead-letter output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: Cow<'static, str>,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<Cow<'static, str>>) -> Rejection {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}
