//! One account's journeys, for `GET /api/v1/accounts/{account_id}`: what an analyst opens when a
//! number looks wrong. Computed from the same touches and journey rules as the counters.

use serde::Serialize;

use crate::funnel::journey::Outcome;
use crate::funnel::{LOST, NO_STAGE};
use crate::time::{Millis, format_rfc3339};

use super::Engine;

#[derive(Debug, Serialize)]
pub struct AccountView {
    pub account_id: String,
    /// The watermark the outcomes are decided at.
    pub watermark: Option<String>,
    pub funnels: Vec<FunnelView>,
}

#[derive(Debug, Serialize)]
pub struct FunnelView {
    pub name: String,
    pub journeys: Vec<JourneyView>,
}

#[derive(Debug, Serialize)]
pub struct JourneyView {
    /// `won`, `lost`, `expired` (timed out or followed by another journey) or `open`.
    pub status: &'static str,
    pub turns: u32,
    pub touches: Vec<TouchView>,
    pub stages: Vec<StageView>,
}

#[derive(Debug, Serialize)]
pub struct TouchView {
    pub event_id: String,
    pub occurred_at: String,
    pub channel: &'static str,
    /// The configured touchpoint kind, `null` for a kind the configuration does not name.
    pub touchpoint: Option<String>,
    /// The stage this touch reaches in the funnel, `"lost"`, or `null`.
    pub stage: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StageView {
    pub name: String,
    pub entered_at: String,
    /// Event id of the touch that entered it, and that touch's channel.
    pub entered_by: String,
    pub channel: &'static str,
    pub turns_before: u32,
    /// `converted`, `dropped` or `open`; `null` for the last stage.
    pub outcome: Option<&'static str>,
    pub conversion_ms: Option<Millis>,
}

impl Engine {
    /// The journeys of one account in every funnel, `None` for an account never seen.
    pub fn account(&mut self, account_id: &str) -> Option<AccountView> {
        let account = self.accounts.lookup(&self.arena, account_id.as_bytes())?;
        let watermark = self.watermark;
        let mut funnels = Vec::with_capacity(self.funnels.len());
        for f in 0..self.funnels.len() {
            let funnel = &self.funnels.funnels[f];
            let mut journeys = Vec::new();
            let (ids, all) = (&self.touch_ids, &self.funnels);
            self.accounts
                .journeys_of(account, f, all, |touches, j, has_later| {
                    let touch_view = |i: usize| {
                        let t = touches[i];
                        let stage = match all.code(t.kind(), f) {
                            NO_STAGE => None,
                            LOST => Some("lost".to_string()),
                            s => Some(funnel.stages[s as usize].clone()),
                        };
                        TouchView {
                            event_id: ids.touch_string(t.id()),
                            occurred_at: format_rfc3339(t.time()),
                            channel: channel(t.online()),
                            touchpoint: all.touchpoint_name(t.kind()).map(str::to_string),
                            stage,
                        }
                    };
                    let stages = (0..j.reached)
                        .map(|s| {
                            let entering = touches[j.entering_touch[s] as usize];
                            let outcome = (s < funnel.last_stage())
                                .then(|| j.outcome(s, funnel, watermark, has_later));
                            StageView {
                                name: funnel.stages[s].clone(),
                                entered_at: format_rfc3339(j.entered[s]),
                                entered_by: ids.touch_string(entering.id()),
                                channel: channel(entering.online()),
                                turns_before: j.turns_before[s],
                                outcome: outcome.map(Outcome::as_str),
                                conversion_ms: match outcome {
                                    Some(Outcome::Converted(ms)) => Some(ms),
                                    _ => None,
                                },
                            }
                        })
                        .collect();
                    journeys.push(JourneyView {
                        status: j.status(funnel, watermark, has_later),
                        turns: j.turns,
                        touches: (j.first..j.end_index).map(touch_view).collect(),
                        stages,
                    });
                });
            funnels.push(FunnelView {
                name: funnel.name.clone(),
                journeys,
            });
        }
        Some(AccountView {
            account_id: account_id.to_string(),
            watermark: self.watermark().map(format_rfc3339),
            funnels,
        })
    }
}

fn channel(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}
