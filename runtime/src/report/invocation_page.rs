//! One exemplar as an HTML page: its figures, its own flamegraph, and its
//! callee tree as a table whose rows fold and unfold. The callee-tree
//! table is also what the report page shows under "Slowest calls".

use std::fmt::Write;

use super::html::{escape, inline_svg, nanos, number, text, unsigned_bytes, STYLE};
use super::invocation_detail::InvocationDetail;
use crate::model::CalleeNode;

/// Folds and unfolds a tree row's descendants (rows whose `data-path`
/// starts with its own).
const TREE_SCRIPT: &str = "document.querySelectorAll('table.tree button').forEach(function(b){\
b.addEventListener('click',function(){var r=b.closest('tr'),p=r.dataset.path+'/',\
open=b.textContent==='\u{25be}';b.textContent=open?'\u{25b8}':'\u{25be}';\
r.closest('tbody').querySelectorAll('tr').forEach(function(x){\
if(x.dataset.path.indexOf(p)===0){x.style.display=open?'none':'';\
var c=x.querySelector('button');if(c)c.textContent=open?'\u{25b8}':'\u{25be}'}})})});";

/// Where an invocation id links to: its page (live) or an anchor on the
/// same page (a report file).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Links {
    Pages,
    Anchors,
}

impl Links {
    pub(crate) fn href(self, id: u64) -> String {
        match self {
            Links::Pages => format!("/debug/agentprof/invocations/{id}"),
            Links::Anchors => format!("#invocation-{id}"),
        }
    }
}

fn tree_rows(out: &mut String, node: &CalleeNode, path: &str, depth: usize) {
    let _ = write!(
        out,
        "<tr class=\"node\" data-path=\"{path}\" data-depth=\"{depth}\">"
    );
    let toggle = if node.children.is_empty() {
        "<span class=\"leaf\"></span>".to_owned()
    } else {
        "<button type=\"button\" title=\"fold or unfold its callees\">\u{25be}</button>".to_owned()
    };
    let calls = if node.calls > 1 {
        format!(" \u{d7}{}", node.calls)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<td class=\"text\" style=\"padding-left:{}px\">{toggle} {}{}</td>",
        8 + depth * 18,
        escape(&node.function),
        escape(&calls)
    );
    text(out, node.agent.as_deref().unwrap_or("(none)"));
    text(
        out,
        &node
            .id
            .map_or_else(|| "(folded)".to_owned(), |id| id.to_string()),
    );
    number(out, Some(node.calls.into()), &node.calls.to_string());
    number(out, Some(node.errors.into()), &node.errors.to_string());
    number(
        out,
        Some(node.start_offset_ns.into()),
        &format!("+{}", nanos(Some(node.start_offset_ns))),
    );
    number(out, Some(node.wall_ns.into()), &nanos(Some(node.wall_ns)));
    number(out, node.cpu_ns.map(i128::from), &nanos(node.cpu_ns));
    number(
        out,
        node.self_cpu_ns.map(i128::from),
        &nanos(node.self_cpu_ns),
    );
    unsigned_bytes(out, node.alloc_bytes);
    number(
        out,
        Some(node.cut_calls.into()),
        &node.cut_calls.to_string(),
    );
    out.push_str("</tr>");
    for (i, child) in node.children.iter().enumerate() {
        tree_rows(out, child, &format!("{path}/{i}"), depth + 1);
    }
}

/// The callee tree of an invocation as a table, one row per node, callees
/// under their caller.
pub(crate) fn callee_tree_table(out: &mut String, tree: &CalleeNode) {
    out.push_str("<table class=\"tree\"><thead><tr>");
    for (i, column) in [
        "function",
        "agent",
        "id",
        "calls",
        "errors",
        "start",
        "wall",
        "cpu",
        "self cpu",
        "allocated",
        "cut calls",
    ]
    .iter()
    .enumerate()
    {
        let class = if i < 3 { " class=\"text\"" } else { "" };
        let _ = write!(out, "<th{class}>{column}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    tree_rows(out, tree, "0", 0);
    out.push_str("</tbody></table>");
}

/// The header of an exemplar: what it was, what it cost.
pub(crate) fn figures(out: &mut String, detail: &InvocationDetail) {
    let r = &detail.invocation;
    let mut facts: Vec<(&str, String)> = vec![
        ("function", r.function.clone()),
        ("agent", r.agent.clone().unwrap_or_else(|| "(none)".into())),
        ("invocation", r.id.to_string()),
        (
            "called from",
            r.parent_id
                .map_or_else(|| "(a root call)".to_owned(), |p| p.to_string()),
        ),
        ("outcome", r.outcome.as_str().to_owned()),
        (
            "kept as",
            format!(
                "one of the slowest by {} in window {}",
                detail.slowest_by.as_str().replace('_', " "),
                detail.window
            ),
        ),
        ("wall", nanos(Some(r.wall_ns))),
        ("cpu", nanos(r.cpu_ns)),
        ("self cpu", nanos(r.self_cpu_ns)),
        (
            "callees",
            (detail
                .tree
                .walk()
                .iter()
                .map(|n| n.calls + n.cut_calls)
                .sum::<u64>()
                - 1)
            .to_string(),
        ),
    ];
    if let Some(bytes) = r.alloc_bytes {
        facts.push(("allocated", super::html::bytes(Some(bytes as i64))));
        facts.push(("retained", super::html::bytes(r.retained_bytes)));
        facts.push(("peak", super::html::bytes(r.peak_bytes.map(|p| p as i64))));
    }
    if let Some(trace) = &detail.trace_id {
        facts.push(("trace id", trace.clone()));
    }
    if let Some(span) = &detail.span_id {
        facts.push(("span id", span.clone()));
    }
    for (key, value) in &r.labels {
        facts.push(("label", format!("{key} = {value}")));
    }
    out.push_str("<dl>");
    for (name, value) in facts {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(&value));
    }
    out.push_str("</dl>");
}

impl InvocationDetail {
    /// The invocation as a self-contained HTML page: its figures, callee
    /// tree and flamegraph.
    pub fn to_html(&self) -> String {
        let r = &self.invocation;
        let title = format!("{} #{}", r.function, r.id);
        let mut out = String::with_capacity(32 << 10);
        let _ = write!(
            out,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>{}</title><style>{STYLE}table.tree button{{border:0;background:none;\
             cursor:pointer;padding:0 2px}}</style></head><body><h1>{}</h1>\
             <p><a href=\"/debug/agentprof/\">the report</a> \u{b7} \
             <a href=\"?format=json\">JSON</a> \u{b7} \
             <a href=\"{}/pprof\">pprof</a></p>",
            escape(&title),
            escape(&title),
            r.id
        );
        figures(&mut out, self);
        out.push_str("<section id=\"flamegraph\"><h2>Its CPU flamegraph</h2>");
        match &self.profile {
            Some(profile) if profile.sample_count() > 0 => {
                let _ = write!(
                    out,
                    "<p class=\"muted\">{} samples, {} of CPU, of this invocation and the \
                     invocations it made, on every thread they ran on.</p>",
                    profile.sample_count(),
                    nanos(Some(profile.total_cpu_ns()))
                );
                match profile.flamegraph_svg() {
                    Ok(svg) => {
                        let _ = write!(
                            out,
                            "<div class=\"flame\">{}</div>",
                            inline_svg(&String::from_utf8_lossy(&svg))
                        );
                    }
                    Err(e) => {
                        let _ = write!(out, "<p>{}</p>", escape(&e.to_string()));
                    }
                }
            }
            Some(_) => out.push_str(
                "<p class=\"muted\">No CPU samples: it ran for less than the sampling \
                 period, or its samples left the recent-samples ring before it finished.</p>",
            ),
            None => out.push_str(
                "<p class=\"muted\">No CPU samples: no CPU sampler was running \
                 (`telemetry.profiling.cpu.continuous`, a `CpuProfiler`, or a profile request).</p>",
            ),
        }
        out.push_str("</section><section id=\"callees\"><h2>What it called</h2>");
        if self.tree_folded {
            out.push_str(
                "<p class=\"muted\">Large tree: calls of one function are folded into one \
                 row (no id), and the deepest levels counted as cut calls on their caller.</p>",
            );
        }
        callee_tree_table(&mut out, &self.tree);
        let _ = write!(
            out,
            "</section><script>{TREE_SCRIPT}</script></body></html>"
        );
        out
    }
}
