//! The funnel table printed after a replay (and, later, by the demo): people would rather look
//! than read JSON.

use std::fmt::Write as _;

use crate::summary::Summary;

const DAY_MS: f64 = 86_400_000.0;

/// Renders a summary as plain-text tables, one per funnel.
pub fn funnel_table(summary: &Summary) -> String {
    let mut out = String::new();
    let e = &summary.events;
    let _ = writeln!(
        out,
        "events: {} received, {} accepted ({} identify), {} duplicates, {} rejected, {} late, {} unresolved, {} identity conflicts",
        e.received,
        e.accepted,
        e.identify,
        e.duplicates,
        e.rejected.total(),
        e.late,
        e.unresolved,
        e.identity_conflicts
    );
    let _ = writeln!(
        out,
        "watermark: {}",
        summary.watermark.as_deref().unwrap_or("none yet")
    );
    for funnel in &summary.funnels {
        let width = funnel
            .stages
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(
            out,
            "\n{} — {} journeys, {} won, {} lost",
            funnel.name, funnel.journeys, funnel.journeys_won, funnel.journeys_lost
        );
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>9}  {:>6}  {:>9}  {:>8}  {:>9}  turns 0/1/2/3/4+",
            "stage", "entered", "converted", "conv%", "dropped", "open", "mean days"
        );
        let last = funnel.stages.len().saturating_sub(1);
        for (i, s) in funnel.stages.iter().enumerate() {
            let turns = s
                .turns_before_entry
                .as_array()
                .map(|t| t.to_string())
                .join("/");
            if i == last {
                let _ = writeln!(
                    out,
                    "{:<width$}  {:>9}  {:>9}  {:>6}  {:>9}  {:>8}  {:>9}  {turns}",
                    s.name, s.entered, "", "", "", "", ""
                );
                continue;
            }
            let rate = if s.entered > 0 {
                format!("{:.1}%", 100.0 * s.converted as f64 / s.entered as f64)
            } else {
                "-".to_string()
            };
            let mean = if s.converted > 0 {
                format!(
                    "{:.1}",
                    s.conversion_ms_sum as f64 / s.converted as f64 / DAY_MS
                )
            } else {
                "-".to_string()
            };
            let _ = writeln!(
                out,
                "{:<width$}  {:>9}  {:>9}  {:>6}  {:>9}  {:>8}  {:>9}  {turns}",
                s.name, s.entered, s.converted, rate, s.dropped, s.open, mean
            );
        }
    }
    out
}
