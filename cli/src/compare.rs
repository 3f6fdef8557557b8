//! Two reports, row by row: what changed beyond the noise, and which
//! thresholds that crosses.
//!
//! The noise floor of a change is the larger of `--noise-floor` (run to
//! run variation the user expects), the histograms' resolution (1%), and
//! an estimate from the row itself: a median measured over `n` calls
//! moves by about its distribution's width over √n between runs, the
//! width read as (p99 − p50) / p50. Rows with fewer than `--min-calls`
//! calls on either side are listed but never compared.

use std::collections::BTreeMap;

use agentprof_runtime::api::report::Report;

use crate::figures::{Figures, Metric, RowKey};
use crate::threshold::Threshold;

/// The histograms keep two significant digits.
const RESOLUTION_PERCENT: f64 = 1.0;

pub struct Options {
    pub min_calls: u64,
    pub noise_floor_percent: f64,
    pub thresholds: Vec<Threshold>,
}

/// One metric of one row, before and after.
#[derive(Clone, Debug)]
pub struct Change {
    pub row: RowKey,
    pub metric: Metric,
    pub before: f64,
    pub after: f64,
    pub percent: f64,
    pub floor_percent: f64,
}

/// A threshold crossed by a change.
#[derive(Clone, Debug)]
pub struct Failure {
    pub threshold: String,
    pub change: Change,
}

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Changes beyond their noise floor, largest first.
    pub changed: Vec<Change>,
    /// Rows compared with no change beyond the floor.
    pub unchanged: usize,
    /// Rows with too few calls on a side: (row, calls before, after).
    pub too_few_calls: Vec<(RowKey, u64, u64)>,
    pub only_before: Vec<RowKey>,
    pub only_after: Vec<RowKey>,
    pub failures: Vec<Failure>,
}

fn rows(report: &Report) -> BTreeMap<RowKey, Figures> {
    let agents = report
        .agents
        .iter()
        .map(|a| (RowKey::Agent(a.agent.clone()), Figures::of_agent(a)));
    let functions = report.functions.iter().map(|f| {
        (
            RowKey::Function(f.agent.clone(), f.function.clone()),
            Figures::of_function(f),
        )
    });
    agents.chain(functions).collect()
}

fn wider(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn floor_percent(metric: Metric, before: &Figures, after: &Figures, options: &Options) -> f64 {
    let n = before.calls.min(after.calls).max(1) as f64;
    let width = match metric {
        Metric::CpuP50 | Metric::CpuMean | Metric::SelfCpu => {
            wider(before.cpu_spread, after.cpu_spread)
        }
        Metric::WallP50 => wider(before.wall_spread, after.wall_spread),
        // A tail moves more than a median: the same width, over fewer
        // calls beyond it.
        Metric::CpuP99 => wider(before.cpu_spread, after.cpu_spread).map(|w| w * 10.0),
        Metric::WallP99 => wider(before.wall_spread, after.wall_spread).map(|w| w * 10.0),
        Metric::Calls | Metric::Alloc => None,
    };
    let estimated = width.map_or(0.0, |w| 100.0 * w / n.sqrt());
    options
        .noise_floor_percent
        .max(RESOLUTION_PERCENT)
        .max(estimated)
}

pub fn compare(before: &Report, after: &Report, options: &Options) -> Comparison {
    let (before, after) = (rows(before), rows(after));
    let mut comparison = Comparison::default();
    for (key, old) in &before {
        let Some(new) = after.get(key) else {
            comparison.only_before.push(key.clone());
            continue;
        };
        if old.calls < options.min_calls || new.calls < options.min_calls {
            comparison
                .too_few_calls
                .push((key.clone(), old.calls, new.calls));
            continue;
        }
        let mut row_changed = false;
        for metric in Metric::ALL {
            let (Some(b), Some(a)) = (old.get(metric), new.get(metric)) else {
                continue;
            };
            if b <= 0.0 {
                continue;
            }
            let percent = 100.0 * (a - b) / b;
            let floor = floor_percent(metric, old, new, options);
            if percent.abs() <= floor {
                continue;
            }
            let change = Change {
                row: key.clone(),
                metric,
                before: b,
                after: a,
                percent,
                floor_percent: floor,
            };
            for threshold in &options.thresholds {
                if threshold.metric == metric && threshold.crossed_by(percent) {
                    comparison.failures.push(Failure {
                        threshold: threshold.to_string(),
                        change: change.clone(),
                    });
                }
            }
            comparison.changed.push(change);
            row_changed = true;
        }
        if !row_changed {
            comparison.unchanged += 1;
        }
    }
    comparison.only_after = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    comparison
        .changed
        .sort_by(|a, b| b.percent.abs().total_cmp(&a.percent.abs()));
    comparison
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentprof_runtime::api::report::FunctionRow;

    fn report(cpu_p50: u64, calls: u64) -> Report {
        Report {
            functions: vec![FunctionRow {
                agent: Some("planner".to_owned()),
                function: "app::plan".to_owned(),
                calls,
                cpu_ns: Some(cpu_p50 * calls),
                self_cpu_ns: Some(cpu_p50 * calls),
                cpu_ns_p50: Some(cpu_p50),
                cpu_ns_p99: Some(cpu_p50 * 11 / 10),
                wall_ns_p50: 1_000,
                wall_ns_p99: 1_000,
                ..FunctionRow::default()
            }],
            ..Report::default()
        }
    }

    fn options(thresholds: &[&str]) -> Options {
        Options {
            min_calls: 20,
            noise_floor_percent: 3.0,
            thresholds: thresholds
                .iter()
                .map(|t| Threshold::parse(t).unwrap())
                .collect(),
        }
    }

    #[test]
    fn a_slower_function_crosses_its_threshold_and_noise_does_not() {
        let slower = compare(
            &report(1_000_000, 100),
            &report(1_300_000, 100),
            &options(&["cpu_p50>+10%"]),
        );
        assert_eq!(slower.failures.len(), 1, "{slower:?}");
        let change = &slower.failures[0].change;
        assert_eq!(change.metric, Metric::CpuP50);
        assert!((change.percent - 30.0).abs() < 1e-9);
        let noise = compare(
            &report(1_000_000, 100),
            &report(1_020_000, 100),
            &options(&["cpu_p50>+1%"]),
        );
        assert!(
            noise.failures.is_empty() && noise.changed.is_empty(),
            "{noise:?}"
        );
        assert_eq!(noise.unchanged, 1);
    }

    #[test]
    fn rows_with_few_calls_are_listed_not_compared() {
        let few = compare(
            &report(1_000_000, 5),
            &report(9_000_000, 5),
            &options(&["cpu_p50>+10%"]),
        );
        assert!(few.failures.is_empty());
        assert_eq!(few.too_few_calls.len(), 1);
    }
}
