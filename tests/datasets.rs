//! End to end on real public data (`../shared/datasets`): each CSV is turned into touchpoint
//! messages the way a connector would, replayed, and the stage numbers are checked against
//! the naive oracle computed straight from the CSV rows; the BI files written on the way, in
//! several revisions, must give the same numbers through the shipped DuckDB views.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::json;

/// `M/D/YYYY` or `M/D/YYYY H:MM` as epoch millis, UTC.
fn us_date(s: &str) -> i64 {
    let (date, time) = s.split_once(' ').unwrap_or((s, "0:00"));
    let p: Vec<i64> = date.split('/').map(|x| x.parse().unwrap()).collect();
    let (h, m) = time.split_once(':').unwrap();
    days_from_civil(p[2], p[0], p[1]) * DAY
        + h.parse::<i64>().unwrap() * 3_600_000
        + m.parse::<i64>().unwrap() * 60_000
}

/// `YYYY-MM-DD` as epoch millis, UTC.
fn iso_date(s: &str) -> i64 {
    let p: Vec<i64> = s.split('-').map(|x| x.parse().unwrap()).collect();
    days_from_civil(p[0], p[1], p[2]) * DAY
}

const OLIST: &str = r#"
[pipeline]
allowed_lateness = "1d"
[touchpoints]
mql_contact = "online"
deal_won = "offline"
[[funnel]]
name = "olist"
stages = ["mql", "won"]
conversion_window = "90d"
journey_timeout = "365d"
[funnel.rules]
mql_contact = "mql"
deal_won = "won"
"#;

#[test]
fn olist_leads_and_won_deals_match_the_oracle() {
    let dir = datasets().join("olist_marketing_funnel");
    let leads = csv_rows(&dir.join("olist_marketing_qualified_leads_dataset.csv"));
    let deals = csv_rows(&dir.join("olist_closed_deals_dataset.csv"));
    assert_eq!((leads.len(), deals.len()), (8000, 380));

    let mut messages = Vec::new();
    let mut accounts: HashMap<String, Vec<OracleTouch>> = HashMap::new();
    let mut newest = i64::MIN;
    // Leads as epoch millis (a CRM export), deals as RFC 3339 strings: both forms of §1.
    for row in &leads {
        let (id, at) = (format!("mql-{}", row[0]), us_date(&row[1]));
        messages.push(
            json!({"event_id": id, "occurred_at": at, "account_id": row[0],
            "touchpoint": "mql_contact", "campaign": row[2]})
            .to_string(),
        );
        accounts
            .entry(row[0].clone())
            .or_default()
            .push(OracleTouch {
                time: at,
                id,
                online: true,
                stage: Some(0),
                lost: false,
            });
        newest = newest.max(at);
    }
    for row in &deals {
        let (id, at) = (format!("won-{}", row[0]), us_date(&row[2]));
        let rfc = spiral::time::format_rfc3339(at);
        messages.push(
            json!({"event_id": id, "occurred_at": rfc, "account_id": row[0],
            "touchpoint": "deal_won", "attributes": {"segment": row[3]}})
            .to_string(),
        );
        accounts
            .entry(row[0].clone())
            .or_default()
            .push(OracleTouch {
                time: at,
                id,
                online: false,
                stage: Some(1),
                lost: false,
            });
        newest = newest.max(at);
    }
    let summary = bi::replay_checked(OLIST, &messages, messages.len() / 4);
    let rules = OracleRules {
        stages: 2,
        windows: vec![90 * DAY, 0],
        timeout: 365 * DAY,
    };
    let expected = oracle(&accounts, &rules, newest);
    assert_funnel_eq(&summary, 0, &expected);
    assert_eq!(summary.events.accepted, 8380);
    assert_eq!(summary.funnels[0].journeys_won, 380);
    // The deals arrive after every lead, so those older than the watermark are late.
    assert!(summary.events.late > 0);
}

const CRM: &str = r#"
[touchpoints]
crm_stage_change = "offline"
[[funnel]]
name = "pipeline"
stages = ["engaging", "won"]
conversion_window = "120d"
journey_timeout = "180d"
"#;

#[test]
fn crm_pipeline_with_dateless_and_accountless_rows_matches_the_oracle() {
    let rows = csv_rows(&datasets().join("maven_crm_sales_opportunities/sales_pipeline.csv"));
    assert_eq!(rows.len(), 8800);
    let mut messages = Vec::new();
    let mut accounts: HashMap<String, Vec<OracleTouch>> = HashMap::new();
    let (mut missing_field, mut no_identity, mut newest) = (0, 0, i64::MIN);
    for row in &rows {
        let (opp, account, stage, engage, close) = (&row[0], &row[3], &row[4], &row[5], &row[6]);
        let mut emit = |suffix: &str, date: &str, crm_stage: &str| {
            let id = format!("{opp}-{suffix}");
            let mut m = json!({"event_id": id, "touchpoint": "crm_stage_change", "stage": crm_stage,
                "campaign": row[2]});
            // A CRM export leaves empty cells empty: no date, no account.
            if !date.is_empty() {
                m["occurred_at"] = format!("{date}T00:00:00Z").into();
            }
            if !account.is_empty() {
                m["account_id"] = account.as_str().into();
            }
            messages.push(m.to_string());
            if date.is_empty() {
                missing_field += 1;
            } else if account.is_empty() {
                no_identity += 1;
            } else {
                let time = iso_date(date);
                newest = newest.max(time);
                let (stage, lost) = match crm_stage {
                    "engaging" => (Some(0), false),
                    "won" => (Some(1), false),
                    _ => (None, true),
                };
                accounts
                    .entry(account.clone())
                    .or_default()
                    .push(OracleTouch {
                        time,
                        id,
                        online: false,
                        stage,
                        lost,
                    });
            }
        };
        emit("engage", engage, "engaging");
        match stage.as_str() {
            "Won" => emit("close", close, "won"),
            "Lost" => emit("close", close, "lost"),
            _ => {}
        }
    }
    let summary = bi::replay_checked(CRM, &messages, messages.len() / 4);
    assert_eq!(summary.events.rejected.missing_field, missing_field);
    assert_eq!(summary.events.rejected.no_identity, no_identity);
    assert_eq!(
        missing_field, 500,
        "every Prospecting row has no engage date"
    );
    assert!(no_identity > 1000, "the open rows without an account");
    let rules = OracleRules {
        stages: 2,
        windows: vec![120 * DAY, 0],
        timeout: 180 * DAY,
    };
    assert_funnel_eq(&summary, 0, &oracle(&accounts, &rules, newest));
    assert!(summary.funnels[0].journeys_lost > 0);
}

const ADS: &str = r#"
[pipeline]
allowed_lateness = "1d"
[touchpoints]
impression = "online"
conversion = "online"
[[funnel]]
name = "ads"
stages = ["impression", "conversion"]
conversion_window = "7d"
journey_timeout = "14d"
[funnel.rules]
impression = "impression"
conversion = "conversion"
"#;

#[test]
fn ad_touch_log_out_of_order_matches_the_oracle() {
    let rows = csv_rows(&datasets().join("multi_touch_attribution/attribution_data.csv"));
    assert_eq!(rows.len(), 62_483);
    let mut messages = Vec::new();
    let mut accounts: HashMap<String, Vec<OracleTouch>> = HashMap::new();
    let mut newest = i64::MIN;
    for (i, row) in rows.iter().enumerate() {
        let id = format!("touch-{i}");
        let time = spiral::time::parse_rfc3339(&row[1]).expect("RFC 3339 in the file");
        messages.push(
            json!({"event_id": id, "occurred_at": row[1], "anonymous_id": row[0],
            "account_id": row[0], "touchpoint": row[2], "campaign": row[5], "channel": "online",
            "revenue": row[4].parse::<f64>().unwrap()})
            .to_string(),
        );
        let stage = Some(if row[2] == "conversion" { 1 } else { 0 });
        accounts
            .entry(row[0].clone())
            .or_default()
            .push(OracleTouch {
                time,
                id,
                online: true,
                stage,
                lost: false,
            });
        newest = newest.max(time);
    }
    let summary = bi::replay_checked(ADS, &messages, messages.len() / 4);
    let rules = OracleRules {
        stages: 2,
        windows: vec![7 * DAY, 0],
        timeout: 14 * DAY,
    };
    assert_funnel_eq(&summary, 0, &oracle(&accounts, &rules, newest));
    assert_eq!(summary.events.accepted, 62_483);
    assert!(summary.events.late > 1000, "the log is not in time order");
}
