//! Broken lines: extra noise events that break exactly one rule of SPEC §1 each, spread over
//! every rejection reason. Each is built from a plausible event of its own (a fresh event id
//! from a separate id space) and then damaged, so good journeys are never touched.

use std::io::Write as _;

use super::clock::{self, DAY, SECOND};
use super::render::{self, Campaign, Ev, Ids, Mods, Ts};
use super::rng::Rng;

/// The first oversized line comes at this line number, then one every [`OVERSIZED_EVERY`]
/// lines: they are 64 KiB+ each, so a handful per million is plenty.
const OVERSIZED_FIRST: u64 = 50_000;
const OVERSIZED_EVERY: u64 = 200_000;
/// Broken events take ids from the top half of the counter space; good events count from 1.
const ID_SPACE: u64 = 1 << 63;

pub(super) struct Breaker {
    rng: Rng,
    ids: Ids,
    accounts: u32,
    start: i64,
    next_id: u64,
    next_oversized: u64,
}

impl Breaker {
    pub(super) fn new(seed: u64, ids: Ids, accounts: u32, start: i64) -> Breaker {
        Breaker {
            rng: Rng::new(seed),
            ids,
            accounts,
            start,
            next_id: ID_SPACE,
            next_oversized: OVERSIZED_FIRST,
        }
    }

    /// Writes one broken line (no newline) for a message arriving around `at`, as line
    /// number `line` of the output; returns the SPEC §1 reason a decoder must give.
    pub(super) fn line(&mut self, at: i64, line: u64, out: &mut Vec<u8>) -> &'static str {
        if line >= self.next_oversized {
            self.next_oversized += OVERSIZED_EVERY;
            self.oversized(at, out);
            return "oversized";
        }
        match self.rng.weighted(&[40, 15, 15, 15, 15]) {
            0 => {
                self.malformed(at, out);
                "malformed"
            }
            1 => {
                self.missing_field(at, out);
                "missing_field"
            }
            2 => {
                self.invalid_timestamp(at, out);
                "invalid_timestamp"
            }
            3 => {
                self.invalid_channel(at, out);
                "invalid_channel"
            }
            _ => {
                self.no_identity(at, out);
                "no_identity"
            }
        }
    }

    /// A valid touch to damage: a web visit, an email open or a CRM stage change.
    fn base(&mut self, at: i64) -> Ev {
        self.next_id += 1;
        let a = self.rng.below(u64::from(self.accounts)) as u32;
        let at = (at - self.rng.between(0, 120) * SECOND).max(self.start);
        let ts = if self.rng.chance(0.5) {
            Ts::ZMillis
        } else {
            Ts::EpochMs
        };
        let mut ev = Ev::bare(self.next_id, at, ts, "web_visit", false);
        match self.rng.below(3) {
            0 => {
                ev.anon = Some((u64::from(a) << 8) | 0x70);
                ev.source = Some("google");
            }
            1 => {
                ev.touchpoint = "email_open";
                ev.contact = Some(a * 8);
                ev.campaign = Campaign::Monthly("newsletter");
            }
            _ => {
                ev.touchpoint = "crm_stage_change";
                ev.offline = true;
                ev.account = Some(a);
                ev.stage = Some("mql");
            }
        }
        ev
    }

    fn render(&self, ev: &Ev, mods: &Mods, out: &mut Vec<u8>) {
        render::render(ev, self.ids, mods, out);
    }

    fn oversized(&mut self, at: i64, out: &mut Vec<u8>) {
        let ev = self.base(at);
        let size = 66_000 + self.rng.below(30_000) as usize;
        let mut notes = String::with_capacity(size + 64);
        notes.push_str("{\"notes\":\"");
        const WORDS: [&str; 8] = [
            "pasted",
            "email",
            "thread",
            "re:",
            "pricing",
            "follow-up",
            "fwd:",
            "notes",
        ];
        while notes.len() < size {
            notes.push_str(self.rng.pick(&WORDS));
            notes.push(' ');
        }
        notes.push_str("\"}");
        let mods = Mods {
            drop: &["attributes"],
            add: vec![("attributes", notes)],
        };
        self.render(&ev, &mods, out);
    }

    fn malformed(&mut self, at: i64, out: &mut Vec<u8>) {
        let mut ev = self.base(at);
        let (drop, key, raw): (&'static [&'static str], &'static str, String) =
            match self.rng.below(12) {
                0 | 1 => {
                    // Truncated: the producer died mid-write.
                    self.render(&ev, Mods::NONE, out);
                    let mut cut =
                        self.rng.between(out.len() as i64 / 4, out.len() as i64 - 1) as usize;
                    // Cut between characters, so the line stays valid UTF-8 (only the JSON is broken).
                    while out[cut] & 0xC0 == 0x80 {
                        cut -= 1;
                    }
                    out.truncate(cut.max(1));
                    return;
                }
                2 => {
                    let mut inner = Vec::new();
                    self.render(&ev, Mods::NONE, &mut inner);
                    match self.rng.below(4) {
                        0 => {
                            out.push(b'[');
                            out.extend_from_slice(&inner);
                            out.push(b']');
                        }
                        1 => out.extend_from_slice(b"\"web_visit\""),
                        2 => out.extend_from_slice(b"null"),
                        _ => {
                            let _ = write!(out, "{}", ev.at);
                        }
                    }
                    return;
                }
                3 => (&[], "touchpoint", "\"email_open\"".into()),
                4 => (&[], "event_id", format!("\"{:016x}\"", self.rng.next_u64())),
                5 => (
                    &["attributes"],
                    "attributes",
                    r#"{"segment":"smb","segment":"enterprise"}"#.into(),
                ),
                6 => (&["cost"], "cost", "\"12.50\"".into()),
                7 => match self.rng.below(4) {
                    0 => (&["occurred_at"], "occurred_at", "true".into()),
                    1 => (&["account_id"], "account_id", "123456".into()),
                    2 => (&["attributes"], "attributes", r#"{"seats":25}"#.into()),
                    _ => (&["event_id"], "event_id", "42".into()),
                },
                8 => {
                    ev.touchpoint = "ad_click";
                    ev.offline = false;
                    let raw = if self.rng.chance(0.5) {
                        "-12.5"
                    } else {
                        "-0.01"
                    };
                    (&["cost"], "cost", raw.into())
                }
                9 => {
                    let raw = self.rng.pick(&["\"track\"", "\"Identify\"", "\"page\""]);
                    (&["type"], "type", raw.into())
                }
                10 => (&["event_id"], "event_id", "\"\"".into()),
                _ => {
                    let long: String = (0..300)
                        .map(|i| char::from(b'a' + (i % 26) as u8))
                        .collect();
                    (&["contact_id"], "contact_id", format!("\"c-{long}\""))
                }
            };
        self.render(
            &ev,
            &Mods {
                drop,
                add: vec![(key, raw)],
            },
            out,
        );
    }

    fn missing_field(&mut self, at: i64, out: &mut Vec<u8>) {
        let ev = self.base(at);
        let mods = match self.rng.below(6) {
            0 => Mods {
                drop: &["event_id"],
                add: vec![],
            },
            1 => Mods {
                drop: &["occurred_at"],
                add: vec![],
            },
            2 => Mods {
                drop: &["occurred_at"],
                add: vec![("occurred_at", "null".into())],
            },
            3 => Mods {
                drop: &["touchpoint"],
                add: vec![],
            },
            4 => Mods {
                drop: &["touchpoint"],
                add: vec![("touchpoint", "\"\"".into())],
            },
            _ => Mods {
                drop: &["touchpoint"],
                add: vec![("touchpoint", "null".into())],
            },
        };
        self.render(&ev, &mods, out);
    }

    fn invalid_timestamp(&mut self, at: i64, out: &mut Vec<u8>) {
        let ev = self.base(at);
        let (y, _, _) = clock::civil_from_days(at.div_euclid(DAY));
        let raw = match self.rng.below(10) {
            0 => format!("\"{y}-02-30T10:00:00Z\""),
            1 => format!("\"{y}-04-31T09:15:00.120+02:00\""),
            2 => format!("\"{y}-13-01T00:00:00Z\""),
            3 => format!("\"{y}-03-01T25:00:00Z\""),
            4 => format!("\"{y}-03-01T10:00:00\""),
            5 => format!("\"{y}-03-01\""),
            6 => format!("\"{}\"", ev.at),
            7 => "1.5e12".to_string(),
            8 => format!("{}.0", ev.at),
            _ => "\"yesterday\"".to_string(),
        };
        self.render(
            &ev,
            &Mods {
                drop: &["occurred_at"],
                add: vec![("occurred_at", raw)],
            },
            out,
        );
    }

    fn invalid_channel(&mut self, at: i64, out: &mut Vec<u8>) {
        let mut ev = self.base(at);
        if self.rng.chance(0.5) {
            let raw = self
                .rng
                .pick(&["\"carrier_pigeon\"", "\"Online\"", "\"email\""]);
            self.render(
                &ev,
                &Mods {
                    drop: &["channel"],
                    add: vec![("channel", raw.into())],
                },
                out,
            );
        } else {
            ev.touchpoint = self
                .rng
                .pick(&["fax_blast", "billboard_view", "podcast_ad"]);
            ev.stage = None;
            self.render(
                &ev,
                &Mods {
                    drop: &["channel"],
                    add: vec![],
                },
                out,
            );
        }
    }

    fn no_identity(&mut self, at: i64, out: &mut Vec<u8>) {
        let mut ev = self.base(at);
        match self.rng.below(4) {
            0 => {
                ev.account = None;
                ev.contact = None;
                ev.anon = None;
                self.render(&ev, Mods::NONE, out);
            }
            1 => {
                let mods = Mods {
                    drop: &["account_id", "contact_id", "anonymous_id"],
                    add: vec![
                        ("account_id", "\"\"".into()),
                        ("anonymous_id", "\"\"".into()),
                    ],
                };
                self.render(&ev, &mods, out);
            }
            _ => {
                // An identify needs two ids; this one has only one.
                ev.identify = true;
                ev.account = None;
                ev.anon = None;
                ev.contact = Some(self.rng.below(u64::from(self.accounts)) as u32 * 8);
                self.render(&ev, Mods::NONE, out);
            }
        }
    }
}
