//! A comparison as text for a terminal or as Markdown for a pull request.

use std::fmt::Write;

use crate::compare::{Change, Comparison, Options};

/// How the comparison is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
}

fn signed(percent: f64) -> String {
    format!("{percent:+.1}%")
}

fn change_cells(c: &Change) -> [String; 6] {
    [
        c.row.to_string(),
        c.metric.name().to_owned(),
        c.metric.format(c.before),
        c.metric.format(c.after),
        signed(c.percent),
        format!("{:.1}%", c.floor_percent),
    ]
}

pub fn render(
    comparison: &Comparison,
    options: &Options,
    names: (&str, &str),
    format: Format,
) -> String {
    let mut out = String::new();
    let markdown = format == Format::Markdown;
    let heading = |out: &mut String, text: &str| {
        if markdown {
            let _ = writeln!(out, "\n### {text}\n");
        } else {
            let _ = writeln!(out, "\n{text}");
        }
    };
    if markdown {
        let _ = writeln!(out, "## agentprof: `{}` → `{}`", names.0, names.1);
    } else {
        let _ = writeln!(out, "agentprof diff: {} -> {}", names.0, names.1);
    }
    let _ = writeln!(
        out,
        "{}noise floor {:.1}% (wider where a row's own spread says so); rows with fewer \
         than {} calls on a side are not compared",
        if markdown { "\n" } else { "" },
        options.noise_floor_percent.max(1.0),
        options.min_calls
    );

    if !comparison.failures.is_empty() {
        heading(&mut out, "Failed thresholds");
        for f in &comparison.failures {
            let c = &f.change;
            let line = format!(
                "{}: {} {} {} -> {} ({})",
                f.threshold,
                c.row,
                c.metric.name(),
                c.metric.format(c.before),
                c.metric.format(c.after),
                signed(c.percent)
            );
            let _ = writeln!(out, "{}{line}", if markdown { "- " } else { "  " });
        }
    }

    heading(&mut out, "Changed beyond the noise floor");
    if comparison.changed.is_empty() {
        let _ = writeln!(out, "{}nothing", if markdown { "" } else { "  " });
    } else if markdown {
        let _ = writeln!(out, "| row | metric | before | after | change | floor |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        for c in &comparison.changed {
            let cells = change_cells(c).map(|s| s.replace('|', "\\|"));
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    } else {
        let rows: Vec<[String; 6]> = comparison.changed.iter().map(change_cells).collect();
        let mut widths = [0usize; 6];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            let _ = writeln!(
                out,
                "  {:<w0$}  {:<w1$}  {:>w2$} -> {:>w3$}  {:>w4$}  (floor {})",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
            );
        }
    }

    let mut notes = vec![format!(
        "{} rows compared without a change beyond their floor",
        comparison.unchanged
    )];
    if !comparison.too_few_calls.is_empty() {
        let listed: Vec<String> = comparison
            .too_few_calls
            .iter()
            .map(|(row, b, a)| format!("{row} ({b} -> {a} calls)"))
            .collect();
        notes.push(format!("too few calls: {}", listed.join(", ")));
    }
    for (what, rows) in [
        ("only before", &comparison.only_before),
        ("only after", &comparison.only_after),
    ] {
        if !rows.is_empty() {
            let listed: Vec<String> = rows.iter().map(ToString::to_string).collect();
            notes.push(format!("{what}: {}", listed.join(", ")));
        }
    }
    heading(&mut out, "Unchanged and not compared");
    for note in notes {
        let _ = writeln!(out, "{}{note}", if markdown { "- " } else { "  " });
    }
    out
}
