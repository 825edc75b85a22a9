//! The three BI tables (SPEC §5.3): their Arrow schemas and the builders that collect rows.
//!
//! Times are `timestamp[ms, tz=UTC]`, durations whole milliseconds (`int64`), counts unsigned.
//! Every table carries `revision`: the checkpoint generation whose files hold the row (a
//! replay writes revision 1). `docs/bi.md` documents each column and the rule that gives the
//! current truth; the builders below are the one place the columns are written.

use std::sync::{Arc, LazyLock};

use std::borrow::Cow;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    MapBuilder, StringBuilder, TimestampMillisecondBuilder, UInt8Builder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::time::Millis;

/// Which table a row goes to; also its directory name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Touches,
    Journeys,
    StageEntries,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Touches, Table::Journeys, Table::StageEntries];

    pub fn name(self) -> &'static str {
        match self {
            Table::Touches => "touches",
            Table::Journeys => "journeys",
            Table::StageEntries => "stage_entries",
        }
    }

    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Touches => TOUCHES.clone(),
            Table::Journeys => JOURNEYS.clone(),
            Table::StageEntries => STAGE_ENTRIES.clone(),
        }
    }
}

fn time() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn field(name: &str, data_type: DataType, nullable: bool) -> Field {
    Field::new(name, data_type, nullable)
}

static TOUCHES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        field("event_id", DataType::Utf8, false),
        field("occurred_at", time(), false),
        field("touchpoint", DataType::Utf8, false),
        field("channel", DataType::Utf8, false),
        field("stage", DataType::Utf8, true),
        field("account_id", DataType::Utf8, true),
        field("contact_id", DataType::Utf8, true),
        field("anonymous_id", DataType::Utf8, true),
        field("campaign", DataType::Utf8, true),
        field("source", DataType::Utf8, true),
        field("cost", DataType::Float64, true),
        field("revenue", DataType::Float64, true),
        field("attributes", ATTRIBUTES.clone(), false),
        field("late", DataType::Boolean, false),
        field("origin", DataType::Utf8, false),
        field("origin_partition", DataType::Int32, true),
        field("origin_offset", DataType::Int64, false),
        field("revision", DataType::UInt64, false),
    ]))
});

/// `map<string, string>`, exactly as [`MapBuilder`] builds it (entry and field names).
static ATTRIBUTES: LazyLock<DataType> =
    LazyLock::new(|| arrow_array::Array::data_type(&Attributes::default().0.finish()).clone());

static JOURNEYS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        field("funnel", DataType::Utf8, false),
        field("account_id", DataType::Utf8, false),
        field("journey", DataType::UInt32, false),
        field("account_journeys", DataType::UInt32, false),
        field("revision", DataType::UInt64, false),
        field("decided_at", time(), true),
        field("started_at", time(), false),
        field("last_touch_at", time(), false),
        field("touches", DataType::UInt32, false),
        field("stages_reached", DataType::UInt8, false),
        field("highest_stage", DataType::Utf8, true),
        field("status", DataType::Utf8, false),
        field("turns", DataType::UInt32, false),
        field("spiral", DataType::Utf8, false),
        field(
            "event_ids",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            false,
        ),
    ]))
});

static STAGE_ENTRIES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        field("funnel", DataType::Utf8, false),
        field("account_id", DataType::Utf8, false),
        field("journey", DataType::UInt32, false),
        field("revision", DataType::UInt64, false),
        field("stage", DataType::Utf8, false),
        field("stage_index", DataType::UInt8, false),
        field("entered_at", time(), false),
        field("entering_event_id", DataType::Utf8, false),
        field("channel", DataType::Utf8, false),
        field("turns_before_entry", DataType::UInt32, false),
        field("outcome", DataType::Utf8, true),
        field("converted_at", time(), true),
        field("time_to_convert_ms", DataType::Int64, true),
    ]))
});

/// A finished timestamp column in UTC.
fn stamp(b: &mut TimestampMillisecondBuilder) -> ArrayRef {
    Arc::new(b.finish().with_timezone("UTC"))
}

/// Rows being collected for one table; [`Rows::finish`] turns them into a batch.
pub enum Rows {
    // Boxed: the builders are kilobytes, and a map of partitions holds many.
    Touches(Box<TouchRows>),
    Journeys(Box<JourneyRows>),
    StageEntries(Box<StageRows>),
}

impl Rows {
    pub fn new(table: Table) -> Rows {
        match table {
            Table::Touches => Rows::Touches(Box::default()),
            Table::Journeys => Rows::Journeys(Box::default()),
            Table::StageEntries => Rows::StageEntries(Box::default()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Rows::Touches(r) => r.revision.len(),
            Rows::Journeys(r) => r.revision.len(),
            Rows::StageEntries(r) => r.revision.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows so far as a batch of `table`'s schema; the builders start over.
    pub fn finish(&mut self, table: Table) -> RecordBatch {
        let columns: Vec<ArrayRef> = match self {
            Rows::Touches(r) => r.finish(),
            Rows::Journeys(r) => r.finish(),
            Rows::StageEntries(r) => r.finish(),
        };
        RecordBatch::try_new(table.schema(), columns).expect("columns match the table's schema")
    }
}

/// One accepted touch as read (never revised: what a touch says does not change).
pub struct Touch<'a> {
    pub event_id: &'a str,
    pub occurred_at: Millis,
    pub touchpoint: &'a str,
    pub channel: &'static str,
    pub stage: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub contact_id: Option<&'a str>,
    pub anonymous_id: Option<&'a str>,
    pub campaign: Option<&'a str>,
    pub source: Option<&'a str>,
    pub cost: Option<f64>,
    pub revenue: Option<f64>,
    pub attributes: &'a [(Cow<'a, str>, Cow<'a, str>)],
    pub late: bool,
    pub origin: Origin<'a>,
}

/// Where a message came from: a Kafka partition and offset, or a replay's file and line.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    Kafka {
        topic: &'a str,
        partition: i32,
        offset: i64,
    },
    File {
        name: &'a str,
        line: u64,
    },
}

#[derive(Default)]
pub struct TouchRows {
    event_id: StringBuilder,
    occurred_at: TimestampMillisecondBuilder,
    touchpoint: StringBuilder,
    channel: StringBuilder,
    stage: StringBuilder,
    account_id: StringBuilder,
    contact_id: StringBuilder,
    anonymous_id: StringBuilder,
    campaign: StringBuilder,
    source: StringBuilder,
    cost: Float64Builder,
    revenue: Float64Builder,
    attributes: Attributes,
    late: BooleanBuilder,
    origin: StringBuilder,
    origin_partition: Int32Builder,
    origin_offset: Int64Builder,
    revision: UInt64Builder,
}

impl TouchRows {
    pub fn push(&mut self, t: &Touch<'_>, revision: u64) {
        self.event_id.append_value(t.event_id);
        self.occurred_at.append_value(t.occurred_at);
        self.touchpoint.append_value(t.touchpoint);
        self.channel.append_value(t.channel);
        self.stage.append_option(t.stage);
        self.account_id.append_option(t.account_id);
        self.contact_id.append_option(t.contact_id);
        self.anonymous_id.append_option(t.anonymous_id);
        self.campaign.append_option(t.campaign);
        self.source.append_option(t.source);
        self.cost.append_option(t.cost);
        self.revenue.append_option(t.revenue);
        let (keys, values) = self.attributes.0.entries();
        for (key, value) in t.attributes {
            keys.append_value(key);
            values.append_value(value);
        }
        self.attributes
            .0
            .append(true)
            .expect("as many keys as values");
        self.late.append_value(t.late);
        match t.origin {
            Origin::Kafka {
                topic,
                partition,
                offset,
            } => {
                self.origin.append_value(topic);
                self.origin_partition.append_value(partition);
                self.origin_offset.append_value(offset);
            }
            Origin::File { name, line } => {
                self.origin.append_value(name);
                self.origin_partition.append_null();
                self.origin_offset.append_value(line as i64);
            }
        }
        self.revision.append_value(revision);
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.event_id.finish()),
            stamp(&mut self.occurred_at),
            Arc::new(self.touchpoint.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.stage.finish()),
            Arc::new(self.account_id.finish()),
            Arc::new(self.contact_id.finish()),
            Arc::new(self.anonymous_id.finish()),
            Arc::new(self.campaign.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.cost.finish()),
            Arc::new(self.revenue.finish()),
            Arc::new(self.attributes.0.finish()),
            Arc::new(self.late.finish()),
            Arc::new(self.origin.finish()),
            Arc::new(self.origin_partition.finish()),
            Arc::new(self.origin_offset.finish()),
            Arc::new(self.revision.finish()),
        ]
    }
}

/// The `attributes` of touches: every key and value as sent.
struct Attributes(MapBuilder<StringBuilder, StringBuilder>);

impl Default for Attributes {
    fn default() -> Attributes {
        Attributes(MapBuilder::new(
            None,
            StringBuilder::new(),
            StringBuilder::new(),
        ))
    }
}

/// One journey as decided at `decided_at`, with the revision its account's rows carry.
pub struct Journey<'a> {
    pub funnel: &'a str,
    pub account_id: &'a str,
    pub journey: u32,
    pub account_journeys: u32,
    /// The watermark the outcomes were decided at; `None` before the watermark has moved.
    pub decided_at: Option<Millis>,
    pub started_at: Millis,
    pub last_touch_at: Millis,
    pub touches: u32,
    pub stages_reached: u8,
    pub highest_stage: Option<&'a str>,
    pub status: &'static str,
    pub turns: u32,
    pub spiral: &'a str,
}

#[derive(Default)]
pub struct JourneyRows {
    funnel: StringBuilder,
    account_id: StringBuilder,
    journey: UInt32Builder,
    account_journeys: UInt32Builder,
    revision: UInt64Builder,
    decided_at: TimestampMillisecondBuilder,
    started_at: TimestampMillisecondBuilder,
    last_touch_at: TimestampMillisecondBuilder,
    touches: UInt32Builder,
    stages_reached: UInt8Builder,
    highest_stage: StringBuilder,
    status: StringBuilder,
    turns: UInt32Builder,
    spiral: StringBuilder,
    event_ids: ListBuilder<StringBuilder>,
}

impl JourneyRows {
    /// A journey row; its touches' event ids follow with [`JourneyRows::event_id`] and end
    /// with [`JourneyRows::end`].
    pub fn push(&mut self, j: &Journey<'_>, revision: u64) {
        self.funnel.append_value(j.funnel);
        self.account_id.append_value(j.account_id);
        self.journey.append_value(j.journey);
        self.account_journeys.append_value(j.account_journeys);
        self.revision.append_value(revision);
        self.decided_at.append_option(j.decided_at);
        self.started_at.append_value(j.started_at);
        self.last_touch_at.append_value(j.last_touch_at);
        self.touches.append_value(j.touches);
        self.stages_reached.append_value(j.stages_reached);
        self.highest_stage.append_option(j.highest_stage);
        self.status.append_value(j.status);
        self.turns.append_value(j.turns);
        self.spiral.append_value(j.spiral);
    }

    pub fn event_id(&mut self, id: &str) {
        self.event_ids.values().append_value(id);
    }

    pub fn end(&mut self) {
        self.event_ids.append(true);
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        let ids = self.event_ids.finish();
        vec![
            Arc::new(self.funnel.finish()),
            Arc::new(self.account_id.finish()),
            Arc::new(self.journey.finish()),
            Arc::new(self.account_journeys.finish()),
            Arc::new(self.revision.finish()),
            stamp(&mut self.decided_at),
            stamp(&mut self.started_at),
            stamp(&mut self.last_touch_at),
            Arc::new(self.touches.finish()),
            Arc::new(self.stages_reached.finish()),
            Arc::new(self.highest_stage.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.turns.finish()),
            Arc::new(self.spiral.finish()),
            Arc::new(ids),
        ]
    }
}

/// One entered stage of a journey.
pub struct StageEntry<'a> {
    pub funnel: &'a str,
    pub account_id: &'a str,
    pub journey: u32,
    pub stage: &'a str,
    pub stage_index: u8,
    pub entered_at: Millis,
    pub entering_event_id: &'a str,
    pub channel: &'static str,
    pub turns_before_entry: u32,
    /// `converted`, `dropped` or `open`; `None` for the last stage.
    pub outcome: Option<&'static str>,
    pub converted_at: Option<Millis>,
    pub time_to_convert_ms: Option<Millis>,
}

#[derive(Default)]
pub struct StageRows {
    funnel: StringBuilder,
    account_id: StringBuilder,
    journey: UInt32Builder,
    revision: UInt64Builder,
    stage: StringBuilder,
    stage_index: UInt8Builder,
    entered_at: TimestampMillisecondBuilder,
    entering_event_id: StringBuilder,
    channel: StringBuilder,
    turns_before_entry: UInt32Builder,
    outcome: StringBuilder,
    converted_at: TimestampMillisecondBuilder,
    time_to_convert_ms: Int64Builder,
}

impl StageRows {
    pub fn push(&mut self, s: &StageEntry<'_>, revision: u64) {
        self.funnel.append_value(s.funnel);
        self.account_id.append_value(s.account_id);
        self.journey.append_value(s.journey);
        self.revision.append_value(revision);
        self.stage.append_value(s.stage);
        self.stage_index.append_value(s.stage_index);
        self.entered_at.append_value(s.entered_at);
        self.entering_event_id.append_value(s.entering_event_id);
        self.channel.append_value(s.channel);
        self.turns_before_entry.append_value(s.turns_before_entry);
        self.outcome.append_option(s.outcome);
        self.converted_at.append_option(s.converted_at);
        self.time_to_convert_ms.append_option(s.time_to_convert_ms);
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.funnel.finish()),
            Arc::new(self.account_id.finish()),
            Arc::new(self.journey.finish()),
            Arc::new(self.revision.finish()),
            Arc::new(self.stage.finish()),
            Arc::new(self.stage_index.finish()),
            stamp(&mut self.entered_at),
            Arc::new(self.entering_event_id.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.turns_before_entry.finish()),
            Arc::new(self.outcome.finish()),
            stamp(&mut self.converted_at),
            Arc::new(self.time_to_convert_ms.finish()),
        ]
    }
}
