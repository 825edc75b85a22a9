//! Bytes → [`Event`] or [`Rejection`]: the one home of SPEC §1's field rules and of the
//! precedence between rejection reasons.
//!
//! Decoding is two steps. [`parse_fields`] walks the whole message once and settles every
//! `malformed` rule (JSON syntax, duplicate keys, known-field types, lengths, `type`, signs),
//! returning at the first breach — whatever else is wrong, a malformed message is malformed.
//! [`Decoder::check`] then applies the remaining reasons, in SPEC order, to fields that are
//! all well-typed. Both steps only look at the message once it passed the size check.

use std::borrow::Cow;

use hashbrown::HashMap;

use super::json::{JsonError, KeyCheck, Kind, Number, Scanner, Value, quote_short};
use super::{Channel, Event, EventType, RejectReason, Rejection};
use crate::time;

/// Longest `event_id`, `account_id`, `contact_id` or `anonymous_id`, in UTF-8 bytes after
/// unescaping (SPEC §1).
pub const MAX_ID_BYTES: usize = 256;

/// Turns raw messages into events, with the pipeline settings the rules depend on.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_event_bytes: usize,
    /// `[touchpoints]` of the config: the channel of a touch that names none.
    default_channels: HashMap<String, Channel>,
}

impl Decoder {
    /// `max_event_bytes` is `pipeline.max_event_bytes`; `default_channels` the
    /// `[touchpoints]` table (touchpoint kind → channel).
    pub fn new(
        max_event_bytes: usize,
        default_channels: impl IntoIterator<Item = (String, Channel)>,
    ) -> Decoder {
        Decoder {
            max_event_bytes,
            default_channels: default_channels.into_iter().collect(),
        }
    }

    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// The configured channel of a touchpoint kind, if any.
    pub fn default_channel(&self, touchpoint: &str) -> Option<Channel> {
        self.default_channels.get(touchpoint).copied()
    }

    /// Decodes one message (SPEC §1). A rejection carries the first reason that applies in
    /// the order of [`RejectReason`], each judged on the whole message before the next.
    ///
    /// Strings without escapes borrow from `msg`; the accept path allocates nothing else
    /// but the `attributes` vector.
    #[inline]
    pub fn decode<'a>(&self, msg: &'a [u8]) -> Result<Event<'a>, Rejection> {
        if msg.len() > self.max_event_bytes {
            return Err(Rejection::new(
                RejectReason::Oversized,
                format!(
                    "message is {} bytes, more than max_event_bytes = {}",
                    msg.len(),
                    self.max_event_bytes
                ),
            ));
        }
        // Filled in place rather than returned: the fields are a few hundred bytes, and moving
        // them out of a `Result` cost a `memcpy` per message.
        let mut fields = Fields::default();
        if let Err(bad) = parse_fields(msg, &mut fields) {
            return Err(Rejection::new(RejectReason::Malformed, bad.into_detail()));
        }
        self.check(fields)
    }

    /// Reasons 3 to 6 of SPEC §1, in order, on a message that is not malformed.
    #[inline(always)]
    fn check<'a>(&self, f: Fields<'a>) -> Result<Event<'a>, Rejection> {
        use RejectReason::{InvalidChannel, InvalidTimestamp, MissingField, NoIdentity};
        let reject = |reason, detail: &'static str| Err(Rejection::new(reason, detail));

        let event_type = f.event_type.unwrap_or(EventType::Touch);
        let touch = event_type == EventType::Touch;
        let Some(event_id) = f.event_id else {
            return reject(MissingField, "event_id: missing");
        };
        let Some(occurred_at) = f.occurred_at else {
            return reject(MissingField, "occurred_at: missing");
        };
        if touch && f.touchpoint.is_none() {
            return reject(MissingField, "touchpoint: missing, and a touch needs one");
        }

        let occurred_at = match occurred_at {
            Time::Text(text) => match time::parse_rfc3339(&text) {
                Some(ms) => ms,
                None => {
                    return reject(
                        InvalidTimestamp,
                        "occurred_at: not an RFC 3339 time with an offset, or no such date",
                    );
                }
            },
            Time::Number(n) if !n.is_integer => {
                return reject(
                    InvalidTimestamp,
                    "occurred_at: epoch milliseconds must be written as an integer",
                );
            }
            Time::Number(n) => match n.to_i64() {
                Some(ms) if time::accepted(ms) => ms,
                _ => {
                    return reject(
                        InvalidTimestamp,
                        "occurred_at: epoch milliseconds outside the years 0000 to 9999",
                    );
                }
            },
        };

        let channel = match (&f.channel, &f.touchpoint) {
            (Some(name), _) => match Channel::parse(name) {
                Some(channel) => Some(channel),
                None if touch => {
                    return reject(InvalidChannel, "channel: not \"online\" or \"offline\"");
                }
                // SPEC §1 judges channels of touches only; an identify keeps none.
                None => None,
            },
            (None, Some(kind)) if touch => match self.default_channel(kind) {
                Some(channel) => Some(channel),
                None => {
                    return Err(Rejection::new(
                        InvalidChannel,
                        format!(
                            "channel: none given, and none configured for touchpoint {}",
                            quote_short(kind)
                        ),
                    ));
                }
            },
            (None, _) => None,
        };

        let ids = usize::from(f.account_id.is_some())
            + usize::from(f.contact_id.is_some())
            + usize::from(f.anonymous_id.is_some());
        if touch && ids == 0 {
            return reject(
                NoIdentity,
                "no account_id, contact_id or anonymous_id: a touch needs one",
            );
        }
        if !touch && ids < 2 {
            return reject(
                NoIdentity,
                "identify needs two of account_id, contact_id and anonymous_id",
            );
        }

        Ok(Event {
            event_id,
            event_type,
            occurred_at,
            account_id: f.account_id,
            contact_id: f.contact_id,
            anonymous_id: f.anonymous_id,
            touchpoint: f.touchpoint,
            channel,
            stage: f.stage,
            campaign: f.campaign,
            source: f.source,
            cost: f.cost,
            revenue: f.revenue,
            attributes: f.attributes,
        })
    }
}

/// The known top-level fields of SPEC §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    EventId,
    Type,
    OccurredAt,
    AccountId,
    ContactId,
    AnonymousId,
    Touchpoint,
    Channel,
    Stage,
    Campaign,
    Source,
    Cost,
    Revenue,
    Attributes,
}

/// Static detail strings per field, so that rejections of known fields never allocate.
macro_rules! field_table {
    ($($field:ident => $name:literal, $kind:literal;)*) => {
        impl Field {
            #[cfg(test)]
            const ALL: &[Field] = &[$(Field::$field),*];

            #[cfg(test)]
            fn name(self) -> &'static str {
                match self {
                    $(Field::$field => $name,)*
                }
            }

            fn repeated(self) -> &'static str {
                match self {
                    $(Field::$field => concat!("key \"", $name, "\" repeated"),)*
                }
            }

            fn wrong_type(self) -> &'static str {
                match self {
                    $(Field::$field => concat!($name, ": not ", $kind),)*
                }
            }
        }
    };
}

field_table! {
    EventId => "event_id", "a string";
    Type => "type", "a string";
    OccurredAt => "occurred_at", "a string or a number";
    AccountId => "account_id", "a string";
    ContactId => "contact_id", "a string";
    AnonymousId => "anonymous_id", "a string";
    Touchpoint => "touchpoint", "a string";
    Channel => "channel", "a string";
    Stage => "stage", "a string";
    Campaign => "campaign", "a string";
    Source => "source", "a string";
    Cost => "cost", "a number";
    Revenue => "revenue", "a number";
    Attributes => "attributes", "an object of strings";
}

impl Field {
    /// The field an (unescaped) key names, if it is a known one.
    ///
    /// Every key of every message comes through here. Switching on the length first lets
    /// each comparison be a fixed-size one the compiler turns into a load or two; a test
    /// keeps this in step with the names in `field_table!`.
    #[inline(always)]
    fn from_key(key: &str) -> Option<Field> {
        let k = key.as_bytes();
        let field = match k.len() {
            4 if k == b"type" => Field::Type,
            4 if k == b"cost" => Field::Cost,
            5 if k == b"stage" => Field::Stage,
            6 if k == b"source" => Field::Source,
            7 if k == b"channel" => Field::Channel,
            7 if k == b"revenue" => Field::Revenue,
            8 if k == b"event_id" => Field::EventId,
            8 if k == b"campaign" => Field::Campaign,
            10 if k == b"account_id" => Field::AccountId,
            10 if k == b"contact_id" => Field::ContactId,
            10 if k == b"touchpoint" => Field::Touchpoint,
            10 if k == b"attributes" => Field::Attributes,
            11 if k == b"occurred_at" => Field::OccurredAt,
            12 if k == b"anonymous_id" => Field::AnonymousId,
            _ => return None,
        };
        Some(field)
    }
}

/// `occurred_at` as written, judged after the `malformed` and `missing_field` rules.
enum Time<'a> {
    Text(Cow<'a, str>),
    Number(Number<'a>),
}

/// The known fields of a message that is not malformed. `None` is absent or `null`, and
/// for the ids and `touchpoint` also empty.
#[derive(Default)]
struct Fields<'a> {
    event_id: Option<Cow<'a, str>>,
    event_type: Option<EventType>,
    occurred_at: Option<Time<'a>>,
    account_id: Option<Cow<'a, str>>,
    contact_id: Option<Cow<'a, str>>,
    anonymous_id: Option<Cow<'a, str>>,
    touchpoint: Option<Cow<'a, str>>,
    channel: Option<Cow<'a, str>>,
    stage: Option<Cow<'a, str>>,
    campaign: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
    cost: Option<f64>,
    revenue: Option<f64>,
    attributes: Attributes<'a>,
}

type Attributes<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// Why a message is malformed: cheap to carry on the hot path, turned into text only for a
/// rejection.
enum Bad {
    Json(JsonError),
    Static(&'static str),
    Text(Box<str>),
}

impl From<JsonError> for Bad {
    fn from(e: JsonError) -> Bad {
        Bad::Json(e)
    }
}

impl From<&'static str> for Bad {
    fn from(detail: &'static str) -> Bad {
        Bad::Static(detail)
    }
}

impl Bad {
    fn into_detail(self) -> Cow<'static, str> {
        match self {
            Bad::Json(e) => Cow::Owned(e.to_string()),
            Bad::Static(detail) => Cow::Borrowed(detail),
            Bad::Text(detail) => Cow::Owned(detail.into()),
        }
    }
}

/// Every `malformed` rule of SPEC §1, in one pass over the message; `Err` is the first
/// breach found.
#[inline(always)]
fn parse_fields<'a>(msg: &'a [u8], fields: &mut Fields<'a>) -> Result<(), Bad> {
    let mut sc = Scanner::new(msg)?;
    if sc.peek()? != Kind::Object {
        return Err("not a json object".into());
    }
    sc.object_start()?;

    let mut seen = 0u16;
    // Most messages have no unknown fields: only build the set for those that do.
    let mut unknown: Option<KeyCheck<'_>> = None;
    let mut first = true;
    while let Some(key) = sc.next_key(&mut first)? {
        let Some(field) = Field::from_key(&key) else {
            if !unknown
                .get_or_insert_with(KeyCheck::new)
                .insert(key.clone())
            {
                let detail = format!("key {} repeated", quote_short(&key));
                return Err(Bad::Text(detail.into()));
            }
            // Unknown fields are ignored, but must still be valid JSON without repeats.
            sc.skip_value()?;
            continue;
        };
        let bit = 1u16 << field as u16;
        if seen & bit != 0 {
            return Err(field.repeated().into());
        }
        seen |= bit;
        if field == Field::Attributes {
            fields.attributes = attributes(&mut sc)?;
        } else {
            let value = sc.value()?;
            set_field(fields, field, value)?;
        }
    }
    sc.end()?;
    Ok(())
}

/// Stores one known field's value, or says why it is malformed.
#[inline]
fn set_field<'a>(f: &mut Fields<'a>, field: Field, value: Value<'a>) -> Result<(), Bad> {
    let text = match value {
        Value::Null => return Ok(()),
        Value::Str(text) => text,
        Value::Num(n) => {
            match field {
                Field::OccurredAt => {
                    // Integers below 300 digits are finite: skip the float for epoch millis.
                    if n.is_negative() {
                        return Err("occurred_at: negative".into());
                    }
                    if !(n.is_integer && n.raw.len() < 300) && n.to_f64().is_infinite() {
                        return Err("occurred_at: not finite".into());
                    }
                    f.occurred_at = Some(Time::Number(n));
                }
                Field::Cost => f.cost = Some(number(n, "cost: negative", "cost: not finite")?),
                Field::Revenue => {
                    f.revenue = Some(number(n, "revenue: negative", "revenue: not finite")?);
                }
                _ => return Err(field.wrong_type().into()),
            }
            return Ok(());
        }
        Value::Bool(_) | Value::Object | Value::Array => return Err(field.wrong_type().into()),
    };
    match field {
        Field::EventId if text.is_empty() => return Err("event_id: empty".into()),
        Field::EventId if text.len() > MAX_ID_BYTES => {
            return Err("event_id: longer than 256 bytes".into());
        }
        Field::EventId => f.event_id = Some(text),
        Field::Type => {
            f.event_type = Some(match &*text {
                "touch" => EventType::Touch,
                "identify" => EventType::Identify,
                _ => return Err("type: not \"touch\" or \"identify\"".into()),
            })
        }
        Field::OccurredAt => f.occurred_at = Some(Time::Text(text)),
        Field::AccountId => f.account_id = id(text, "account_id: longer than 256 bytes")?,
        Field::ContactId => f.contact_id = id(text, "contact_id: longer than 256 bytes")?,
        Field::AnonymousId => {
            f.anonymous_id = id(text, "anonymous_id: longer than 256 bytes")?;
        }
        Field::Touchpoint => f.touchpoint = (!text.is_empty()).then_some(text),
        Field::Channel => f.channel = Some(text),
        Field::Stage => f.stage = Some(text),
        Field::Campaign => f.campaign = Some(text),
        Field::Source => f.source = Some(text),
        Field::Cost | Field::Revenue | Field::Attributes => {
            return Err(field.wrong_type().into());
        }
    }
    Ok(())
}

/// An optional id: empty is absent, longer than [`MAX_ID_BYTES`] is malformed.
#[inline(always)]
fn id<'a>(text: Cow<'a, str>, too_long: &'static str) -> Result<Option<Cow<'a, str>>, Bad> {
    if text.len() > MAX_ID_BYTES {
        Err(Bad::Static(too_long))
    } else {
        Ok((!text.is_empty()).then_some(text))
    }
}

/// A numeric field's value, unless it is negative or overflows `f64` (SPEC §1: "a negative
/// or non-finite number" is malformed). `-0` is zero, and comes back as `+0.0`.
#[inline(always)]
fn number(n: Number<'_>, negative: &'static str, not_finite: &'static str) -> Result<f64, Bad> {
    if n.is_negative() {
        return Err(negative.into());
    }
    let v = n.to_f64();
    if !v.is_finite() {
        return Err(not_finite.into());
    }
    Ok(if v == 0.0 { 0.0 } else { v })
}

/// Attribute sets up to this size are checked for repeated keys by a linear scan.
const LINEAR_ATTRIBUTES: usize = 16;

/// The `attributes` object: `null` (absent) or an object whose values are all strings, with
/// no key repeated.
fn attributes<'a>(sc: &mut Scanner<'a>) -> Result<Attributes<'a>, Bad> {
    match sc.peek()? {
        Kind::Null => {
            sc.value()?;
            return Ok(Vec::new());
        }
        Kind::Object => {}
        _ => return Err(Field::Attributes.wrong_type().into()),
    }
    sc.object_start()?;
    let mut attrs: Attributes<'a> = Vec::new();
    let mut many: Option<KeyCheck<'a>> = None;
    let mut first = true;
    while let Some(key) = sc.next_key(&mut first)? {
        if sc.peek()? != Kind::String {
            return Err("attributes: every value must be a string".into());
        }
        let Value::Str(value) = sc.value()? else {
            unreachable!("peeked a string");
        };
        let repeated = if attrs.len() < LINEAR_ATTRIBUTES {
            attrs.iter().any(|(k, _)| *k == key)
        } else {
            let keys = many.get_or_insert_with(|| {
                let mut keys = KeyCheck::new();
                for (k, _) in &attrs {
                    keys.insert(k.clone());
                }
                keys
            });
            !keys.insert(key.clone())
        };
        if repeated {
            let detail = format!("attributes: key {} repeated", quote_short(&key));
            return Err(Bad::Text(detail.into()));
        }
        attrs.push((key, value));
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests;
