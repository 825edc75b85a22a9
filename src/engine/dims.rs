//! Breakdown dimensions (SPEC §3 "breakdowns", §5.2 "bounded breakdown labels") and the cost
//! of touches.
//!
//! A stage is credited to its entering touch: its channel, and the values of the configured
//! dimensions (`campaign`, `source`, `attributes.NAME`). Labels must stay bounded, so each
//! dimension keeps the first `top_n` distinct values it sees; later values count as `other`,
//! a touch without the field as `none`. Which values get their own label therefore depends on
//! arrival order; the totals over all labels never do.
//!
//! A touch carries its values in [`Touch::dims`](crate::funnel::Touch), 16 bits: the codes
//! (`none`, `other`, then the values) are the digits of one number in base `top_n + 2`, the
//! first dimension lowest, so at most [`MAX_DIMENSIONS`] dimensions and [`max_top_n`] values
//! each (config validation holds `top_n` to it). Two bytes where a byte per dimension took
//! four: about 1 MB less resident memory on the 1 M event replay (issue #2).

use std::collections::HashMap;

use super::SnapshotError;
use crate::codec::{Reader, Writer};
use crate::config::{Dimension, MAX_DIMENSIONS, MetricsConfig, max_top_n};
use crate::event::{Channel, Event};

/// Bounded label values: the first `max` distinct values keep their name.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// The values in code order (`none` and `other` are implied); the map is rebuilt on load.
    fn save(&self, w: &mut Writer<'_>) {
        w.len(self.names.len() - 2);
        for name in &self.names[2..] {
            w.bytes(name.as_bytes());
        }
    }

    fn load(r: &mut Reader<'_>, max: usize) -> Result<TopN, SnapshotError> {
        let mut top = TopN::new(max);
        let n = r.len(8)?;
        if n > max {
            return Err(r.corrupt(format_args!("{n} values, more than top_n {max}")));
        }
        for _ in 0..n {
            let name = std::str::from_utf8(r.bytes()?)
                .map_err(|_| r.corrupt("a label value is not UTF-8"))?
                .to_string();
            let code = top.names.len() as u32;
            if top.codes.insert(name.clone(), code).is_some() {
                return Err(r.corrupt(format_args!("label value {name:?} twice")));
            }
            top.names.push(name);
        }
        Ok(top)
    }
}

/// The configured dimensions with their label values, and the cost counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimensions {
    dims: Vec<Dimension>,
    /// One per dimension, then (when `campaign` is not a dimension) one for the cost counter.
    values: Vec<TopN>,
    campaign: usize,
    /// The base of a touch's packed codes: `top_n` values, `none` and `other`.
    radix: u32,
    /// Cost of accepted touches by (channel, campaign code), in millionths: integer sums do
    /// not depend on the order they were added in, float sums do in their last digits.
    costs: HashMap<(Channel, u32), i64>,
}

impl Dimensions {
    pub fn new(config: &MetricsConfig) -> Dimensions {
        // Packed codes take 16 bits; config validation keeps `top_n` within this already.
        let top_n = config.top_n.min(max_top_n(config.dimensions.len()));
        debug_assert!(config.dimensions.len() <= MAX_DIMENSIONS);
        let mut values: Vec<TopN> = config.dimensions.iter().map(|_| TopN::new(top_n)).collect();
        let campaign = match config
            .dimensions
            .iter()
            .position(|d| *d == Dimension::Campaign)
        {
            Some(i) => i,
            None => {
                values.push(TopN::new(top_n));
                values.len() - 1
            }
        };
        Dimensions {
            dims: config.dimensions.clone(),
            values,
            campaign,
            radix: top_n as u32 + 2,
            costs: HashMap::new(),
        }
    }

    /// The code of dimension `i` in packed codes.
    fn digit(&self, packed: u16, i: usize) -> u32 {
        u32::from(packed) / self.radix.pow(i as u32) % self.radix
    }

    /// Codes, one per dimension in order, packed as [`Touch::dims`](crate::funnel::Touch).
    fn pack(&self, codes: impl Iterator<Item = u32>) -> u16 {
        let packed = codes.fold((0, 1), |(packed, scale), code| {
            debug_assert!(code < self.radix);
            (packed + code * scale, scale * self.radix)
        });
        u16::try_from(packed.0).expect("top_n keeps packed codes within 16 bits")
    }

    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }

    pub fn dimensions(&self) -> &[Dimension] {
        &self.dims
    }

    /// The dimension values of an accepted touch, packed; also counts its cost.
    pub fn touch(&mut self, event: &Event<'_>, channel: Channel) -> u16 {
        let mut codes = [0; MAX_DIMENSIONS];
        for (i, dim) in self.dims.iter().enumerate() {
            let value = match dim {
                Dimension::Campaign => event.campaign.as_deref(),
                Dimension::Source => event.source.as_deref(),
                Dimension::Attribute(name) => event
                    .attributes
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_ref()),
            };
            codes[i] = self.values[i].code(value);
        }
        let packed = self.pack(codes[..self.dims.len()].iter().copied());
        if let Some(cost) = event.cost {
            let campaign = if self.campaign < self.dims.len() {
                codes[self.campaign]
            } else {
                self.values[self.campaign].code(event.campaign.as_deref())
            };
            let micros = (cost * 1e6).round() as i64;
            let total = self.costs.entry((channel, campaign)).or_default();
            *total = total.saturating_add(micros);
        }
        packed
    }

    /// Packed codes of label values another engine gave a touch ([`Dimensions::labels`]):
    /// `none` and `other` keep their meaning, other values are coded here as first seen.
    /// Costs are not counted again: the engine that took the event counted them.
    pub fn code_labels(&mut self, labels: &[String]) -> u16 {
        let n = labels.len().min(self.dims.len());
        let mut codes = [0; MAX_DIMENSIONS];
        for (i, label) in labels.iter().enumerate().take(n) {
            codes[i] = match label.as_str() {
                "none" => TopN::NONE,
                "other" => TopN::OTHER,
                value => self.values[i].code(Some(value)),
            };
        }
        self.pack(codes[..n].iter().copied())
    }

    /// The label values of packed dimension values, in dimension order.
    pub fn labels(&self, packed: u16) -> Vec<&str> {
        (0..self.dims.len())
            .map(|i| self.values[i].name(self.digit(packed, i)))
            .collect()
    }

    /// Whether every value of `packed` has a code (a snapshot check on stored touches).
    pub fn valid(&self, packed: u16) -> bool {
        let n = self.dims.len();
        let used = (0..n).all(|i| (self.digit(packed, i) as usize) < self.values[i].names.len());
        used && u64::from(packed) < u64::from(self.radix).pow(n as u32)
    }

    /// Writes what the codes in stored touches depend on: the dimensions and `top_n`.
    pub fn describe(&self, w: &mut Writer<'_>) {
        w.len(self.dims.len());
        for dim in &self.dims {
            let (tag, name) = match dim {
                Dimension::Campaign => (0, ""),
                Dimension::Source => (1, ""),
                Dimension::Attribute(name) => (2, name.as_str()),
            };
            w.u8(tag);
            w.bytes(name.as_bytes());
        }
        w.len(self.values.first().map_or(0, |v| v.max));
    }

    /// The label values of each dimension and the costs, sorted so equal state saves to
    /// equal bytes. The dimensions themselves come from the config.
    pub fn save(&self, w: &mut Writer<'_>) {
        for values in &self.values {
            values.save(w);
        }
        let mut costs: Vec<_> = self.costs.iter().map(|(&k, &v)| (k, v)).collect();
        costs.sort_unstable_by_key(|&((channel, code), _)| (channel as u8, code));
        w.len(costs.len());
        for ((channel, code), micros) in costs {
            w.u8(channel as u8);
            w.u32(code);
            w.i64(micros);
        }
    }

    pub fn load(r: &mut Reader<'_>, config: &MetricsConfig) -> Result<Dimensions, SnapshotError> {
        r.section("dimensions");
        let mut dims = Dimensions::new(config);
        for values in &mut dims.values {
            *values = TopN::load(r, values.max)?;
        }
        let n = r.len(13)?;
        let campaigns = dims.values[dims.campaign].names.len();
        for _ in 0..n {
            let channel = match r.u8()? {
                c if c == Channel::Online as u8 => Channel::Online,
                c if c == Channel::Offline as u8 => Channel::Offline,
                c => return Err(r.corrupt(format_args!("{c} is not a channel"))),
            };
            let code = r.u32()?;
            if code as usize >= campaigns {
                return Err(r.corrupt(format_args!("cost of unknown campaign code {code}")));
            }
            dims.costs.insert((channel, code), r.i64()?);
        }
        Ok(dims)
    }

    /// (channel, campaign, total cost), sorted for a stable scrape.
    pub fn costs(&self) -> Vec<(Channel, &str, f64)> {
        let campaigns = &self.values[self.campaign];
        let mut rows: Vec<_> = self
            .costs
            .iter()
            .map(|(&(channel, code), &micros)| (channel, campaigns.name(code), micros as f64 / 1e6))
            .collect();
        rows.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

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

    fn event(
        campaign: Option<&'static str>,
        segment: Option<&'static str>,
        cost: Option<f64>,
    ) -> Event<'static> {
        Event {
            event_id: Cow::Borrowed("e"),
            event_type: crate::event::EventType::Touch,
            occurred_at: 0,
            account_id: Some(Cow::Borrowed("a")),
            contact_id: None,
            anonymous_id: None,
            touchpoint: Some(Cow::Borrowed("web_visit")),
            channel: Some(Channel::Online),
            stage: None,
            campaign: campaign.map(Cow::Borrowed),
            source: None,
            cost,
            revenue: None,
            attributes: segment
                .map(|s| vec![(Cow::Borrowed("segment"), Cow::Borrowed(s))])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn touches_pack_their_values_and_costs_add_up() {
        let config = MetricsConfig {
            dimensions: vec![Dimension::Attribute("segment".into()), Dimension::Campaign],
            top_n: 1,
        };
        let mut dims = Dimensions::new(&config);
        let a = dims.touch(
            &event(Some("spring"), Some("smb"), Some(2.5)),
            Channel::Online,
        );
        assert_eq!(dims.labels(a), ["smb", "spring"]);
        let b = dims.touch(&event(Some("summer"), None, Some(4.0)), Channel::Online);
        assert_eq!(dims.labels(b), ["none", "other"]);
        dims.touch(
            &event(Some("spring"), Some("enterprise"), Some(1.0)),
            Channel::Online,
        );
        dims.touch(&event(None, None, Some(100.0)), Channel::Offline);
        assert_eq!(
            dims.costs(),
            vec![
                (Channel::Offline, "none", 100.0),
                (Channel::Online, "other", 4.0),
                (Channel::Online, "spring", 3.5),
            ]
        );
    }

    #[test]
    fn four_dimensions_of_fourteen_values_fit_sixteen_bits() {
        let names = ["a", "b", "c", "d"];
        let config = MetricsConfig {
            dimensions: names
                .iter()
                .map(|n| Dimension::Attribute(n.to_string()))
                .collect(),
            top_n: max_top_n(4),
        };
        let mut dims = Dimensions::new(&config);
        let mut seen = Vec::new();
        // Each dimension gets its 14 values, then one too many (`other`); one has none.
        for v in 0..=14 {
            let mut e = event(None, None, None);
            e.attributes = names[..3]
                .iter()
                .map(|&n| (Cow::Borrowed(n), Cow::Owned(format!("{n}{v}"))))
                .collect();
            let packed = dims.touch(&e, Channel::Online);
            let want = if v < 14 {
                format!("{v}")
            } else {
                "other".into()
            };
            let labels = dims.labels(packed);
            for (n, label) in names[..3].iter().zip(&labels) {
                assert_eq!(label.trim_start_matches(n), want.as_str(), "{labels:?}");
            }
            assert_eq!(labels[3], "none");
            assert!(dims.valid(packed));
            assert_eq!(
                dims.code_labels(&labels.iter().map(|l| l.to_string()).collect::<Vec<_>>()),
                packed
            );
            seen.push(packed);
        }
        seen.dedup();
        assert_eq!(seen.len(), 15);
        // Codes are digits in base 16 here (`other` is 1), and every 16-bit number is a
        // valid code once each dimension has all its values; with three, 16³ is past them.
        let all_other = dims.code_labels(&vec!["other".to_string(); 4]);
        assert_eq!(all_other, 1 + 16 + 256 + 4096);
        let three = MetricsConfig {
            dimensions: config.dimensions[..3].to_vec(),
            top_n: 14,
        };
        assert!(!Dimensions::new(&three).valid(16 * 16 * 16));
    }

    #[test]
    fn cost_has_its_own_campaign_labels_without_a_campaign_dimension() {
        let mut dims = Dimensions::new(&MetricsConfig {
            dimensions: vec![],
            top_n: 5,
        });
        assert_eq!(
            dims.touch(&event(Some("spring"), None, Some(1.5)), Channel::Online),
            0
        );
        assert_eq!(dims.costs(), vec![(Channel::Online, "spring", 1.5)]);
    }
}
