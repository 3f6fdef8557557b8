//! The report as one self-contained HTML page: no network fetch (styles,
//! script and charts inline), tables readable without JavaScript and
//! sortable with it, the memory timeline as an SVG chart, CPU flamegraphs
//! with an agent selector, the heap's top allocation sites and growth.

use std::fmt::Write;

use super::invocation_detail::InvocationDetail;
use super::invocation_page::{self, Links};
use super::text::{Bytes, Nanos};
use crate::model::{MemoryTimelinePoint, Report, WindowFigures};

/// A heap allocation site for the page's heap table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeapSite {
    /// The instrumented function whose invocation allocated, as the report
    /// names it; outside any invocation, the innermost frame of the
    /// program's own code.
    pub function: String,
    /// Agent of the invocation that allocated.
    pub agent: Option<String>,
    /// Estimated bytes in use.
    pub inuse_bytes: i64,
    /// Estimated bytes allocated.
    pub alloc_bytes: i64,
}

/// An HTML page of a report, with what else is at hand: facts for the
/// header, flamegraphs, heap sites. `Report::to_html` renders the report
/// alone.
#[derive(Clone, Debug)]
pub struct HtmlReport<'a> {
    report: &'a Report,
    title: String,
    facts: Vec<(String, String)>,
    flamegraphs: Vec<(String, String)>,
    heap_sites: Vec<HeapSite>,
    cpu_history: Vec<WindowFigures>,
    slowest: Vec<InvocationDetail>,
    invocation_pages: bool,
}

impl Report {
    /// The report as a self-contained HTML page.
    pub fn to_html(&self) -> String {
        HtmlReport::new(self).render()
    }
}

/// Text made safe for HTML content and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An inferno SVG made fit to sit inline among others: the XML prologue,
/// its script and its event handlers go (the picture stays), so that
/// several on one page neither collide nor run code.
pub(super) fn inline_svg(svg: &str) -> String {
    let mut svg = svg[svg.find("<svg").unwrap_or(0)..].to_owned();
    while let Some(start) = svg.find("<script") {
        let end = svg[start..]
            .find("</script>")
            .map_or(svg.len(), |e| start + e + "</script>".len());
        svg.replace_range(start..end, "");
    }
    for handler in [
        " onload=\"",
        " onclick=\"",
        " onmouseover=\"",
        " onmouseout=\"",
    ] {
        while let Some(start) = svg.find(handler) {
            let value = start + handler.len();
            let end = svg[value..].find('"').map_or(svg.len(), |e| value + e + 1);
            svg.replace_range(start..end, "");
        }
    }
    svg
}

/// An SVG with a title and one line of text, as wide as a flamegraph: what
/// a window's flamegraph file holds when there is nothing to draw, so that
/// every window has the same files.
pub(crate) fn message_svg(title: &str, message: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"1200\" height=\"90\" viewBox=\"0 0 1200 90\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n\
         <rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#eeeeee\"/>\n\
         <text x=\"600\" y=\"24\" font-size=\"17\" font-family=\"Verdana\" \
         text-anchor=\"middle\">{}</text>\n\
         <text x=\"600\" y=\"60\" font-size=\"12\" font-family=\"Verdana\" \
         text-anchor=\"middle\">{}</text>\n</svg>\n",
        escape(title),
        escape(message)
    )
    .into_bytes()
}

pub(super) const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}\
th{cursor:pointer;background:#f4f4f4}td.text,th.text{text-align:left}\
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dt{color:#666}\
.flame{max-height:520px;overflow:auto;border:1px solid #eee}\
.flame img,.flame svg{max-width:100%;height:auto}.muted{color:#888}\
details>summary{cursor:pointer;font-weight:600;margin-top:20px}";

/// Sorts a table by the clicked column: numbers by `data-v`, text as text.
const SCRIPT: &str = "document.querySelectorAll('table.sortable th').forEach(function(th,i){\
th.addEventListener('click',function(){var t=th.closest('table'),b=t.tBodies[0],\
r=Array.from(b.rows),d=th.dataset.dir==='asc'?-1:1;th.dataset.dir=d===1?'asc':'desc';\
r.sort(function(x,y){var a=x.cells[i],c=y.cells[i],p=a.dataset.v,q=c.dataset.v;\
if(p!==undefined&&q!==undefined)return d*(parseFloat(p)-parseFloat(q));\
return d*a.textContent.localeCompare(c.textContent)});r.forEach(function(x){b.appendChild(x)})})});\
var s=document.getElementById('flame-agent');if(s){var f=function(){document.querySelectorAll('.flame')\
.forEach(function(d){d.style.display=d.dataset.agent===s.value?'':'none'})};s.addEventListener('change',f);f()}";

/// A table cell holding a number, sortable by its value.
pub(super) fn number(out: &mut String, value: Option<i128>, shown: &str) {
    match value {
        Some(v) => {
            let _ = write!(out, "<td data-v=\"{v}\">{}</td>", escape(shown));
        }
        None => out.push_str("<td data-v=\"-1\">-</td>"),
    }
}

pub(super) fn text(out: &mut String, value: &str) {
    let _ = write!(out, "<td class=\"text\">{}</td>", escape(value));
}

fn header(out: &mut String, columns: &[&str]) {
    out.push_str("<thead><tr>");
    for (i, c) in columns.iter().enumerate() {
        let class = if i < 2 { " class=\"text\"" } else { "" };
        let tip = column_tip(c).map_or(String::new(), |t| format!(" title=\"{}\"", escape(t)));
        let _ = write!(out, "<th{class}{tip}>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>");
}

/// What a column means, as its header's tooltip: one meaning per figure,
/// the same as in the table and the JSON.
fn column_tip(column: &str) -> Option<&'static str> {
    Some(match column {
        "cpu" => "thread CPU time, instrumented callees included (an agent: its own invocations' CPU)",
        "self cpu" => "thread CPU time of the function's own code, instrumented callees excluded",
        "share" => "share of all the own (self) CPU in this table",
        "active" => "invocations running now",
        "active cpu" => "CPU the invocations running now have used so far",
        "errors" => "a function: its calls that returned Err; an agent: its root invocations that did (a failure propagated through several functions counts once)",
        "allocated" => "bytes allocated by the calls (callees included; an agent: its own invocations)",
        "peak" => "most bytes live at once during one call",
        "net p50" => "allocated minus freed when one call ended, median (negative: it freed older memory)",
        "net max" => "allocated minus freed when one call ended, largest",
        "in use" => "heap allocated by these invocations and not freed yet: the heap profiler's estimate (inuse_space)",
        "sampled" => "CPU the sampling profiler saw in these invocations",
        "roots" => "invocations not called from another invocation of the same agent",
        _ => return None,
    })
}

pub(super) fn unsigned_bytes(out: &mut String, value: Option<u64>) {
    number(out, value.map(i128::from), &bytes(value.map(|b| b as i64)));
}

/// `46471` as `46,471`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A share of `total` as a percentage cell.
fn share(out: &mut String, part: Option<u64>, total: u64) {
    match part {
        Some(part) if total > 0 => {
            let percent = part as f64 * 100.0 / total as f64;
            number(out, Some(part.into()), &format!("{percent:.1}%"));
        }
        _ => number(out, None, ""),
    }
}

/// Rows by `cpu`, most first, and the total that shares are of.
fn by_cpu<T>(rows: &[T], cpu: impl Fn(&T) -> Option<u64>) -> (Vec<&T>, u64) {
    let total = rows.iter().filter_map(&cpu).sum();
    let mut sorted: Vec<&T> = rows.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(cpu(r).unwrap_or(0)));
    (sorted, total)
}

/// `this window (#4, 5 s)` is `window`, `since start` is `since-start`.
fn scope_id(scope: &str) -> &'static str {
    if scope.starts_with("this window") {
        "window"
    } else {
        "since-start"
    }
}

fn render_window_agents(out: &mut String, w: &WindowFigures, scope: &str) {
    let _ = write!(
        out,
        "<section class=\"agents\" data-scope=\"window\"><h2>Agents, {}</h2><table class=\"sortable\">",
        escape(scope)
    );
    header(out, &["agent", "", "calls", "active", "cpu", "share"]);
    let (agents, total) = by_cpu(&w.agents, |a| a.cpu_ns);
    for a in agents {
        out.push_str("<tr>");
        text(out, a.agent.as_deref().unwrap_or("(none)"));
        text(out, "");
        number(out, Some(a.calls.into()), &a.calls.to_string());
        number(out, Some(a.active.into()), &a.active.to_string());
        number(out, a.cpu_ns.map(i128::from), &nanos(a.cpu_ns));
        share(out, a.cpu_ns, total);
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></section>");
}

fn render_window_functions(out: &mut String, w: &WindowFigures, scope: &str) {
    let _ = write!(
        out,
        "<section class=\"functions\" data-scope=\"window\"><h2>Functions, {}, by self CPU</h2>\
         <table class=\"sortable\">",
        escape(scope)
    );
    header(
        out,
        &[
            "agent", "function", "calls", "active", "self cpu", "share", "cpu",
        ],
    );
    let (functions, total) = by_cpu(&w.functions, |f| f.self_cpu_ns);
    for f in functions {
        out.push_str("<tr>");
        text(out, f.agent.as_deref().unwrap_or("(none)"));
        text(out, &f.function);
        number(out, Some(f.calls.into()), &f.calls.to_string());
        number(out, Some(f.active.into()), &f.active.to_string());
        number(out, f.self_cpu_ns.map(i128::from), &nanos(f.self_cpu_ns));
        share(out, f.self_cpu_ns, total);
        number(out, f.cpu_ns.map(i128::from), &nanos(f.cpu_ns));
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></section>");
}

pub(super) fn nanos(ns: Option<u64>) -> String {
    Nanos(ns).to_string()
}

pub(super) fn bytes(b: Option<i64>) -> String {
    Bytes(b).to_string()
}

/// The plot area of a chart, and the margins its axes' labels take.
const PLOT_W: f64 = 720.0;
const PLOT_H: f64 = 200.0;
const LEFT: f64 = 92.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 30.0;
const RIGHT: f64 = 130.0;

/// A point of the plot area, from fractions of each axis.
fn plot_xy(x: f64, y: f64) -> (f64, f64) {
    (LEFT + x * PLOT_W, TOP + PLOT_H - y * PLOT_H)
}

/// An SVG chart's opening, its frame and both axes with ticks and
/// gridlines: five on the value axis (0 to `top`, labelled by `label`) and
/// five on the time axis (seconds from 0 to `span_s`).
fn chart_open(
    id: &str,
    aria: &str,
    span_s: f64,
    top: f64,
    label: impl Fn(f64) -> String,
) -> String {
    let (w, h) = (LEFT + PLOT_W + RIGHT, TOP + PLOT_H + BOTTOM);
    let mut out = format!(
        "<svg id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{aria}\" font-size=\"11\">\
         <rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{PLOT_W}\" height=\"{PLOT_H}\" fill=\"#fafafa\" stroke=\"#ccc\"/>"
    );
    out.push_str("<g class=\"y-axis\">");
    for i in 0..=4 {
        let fraction = f64::from(i) / 4.0;
        let (_, y) = plot_xy(0.0, fraction);
        let _ = write!(
            out,
            "<line class=\"tick\" x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\
             <text class=\"tick-label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 4.0,
            LEFT + PLOT_W,
            LEFT - 6.0,
            y + 4.0,
            escape(&label(top * fraction))
        );
    }
    out.push_str("</g><g class=\"x-axis\">");
    for i in 0..=4 {
        let fraction = f64::from(i) / 4.0;
        let (x, _) = plot_xy(fraction, 0.0);
        let _ = write!(
            out,
            "<line class=\"tick\" x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#999\"/>\
             <text class=\"tick-label\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            TOP + PLOT_H,
            TOP + PLOT_H + 5.0,
            TOP + PLOT_H + 18.0,
            seconds_label(span_s * fraction)
        );
    }
    out.push_str("</g>");
    out
}

fn seconds_label(s: f64) -> String {
    if s >= 120.0 {
        format!("{:.0} min", s / 60.0)
    } else if s >= 10.0 || s == 0.0 {
        format!("{s:.0} s")
    } else {
        let text = format!("{s:.2}");
        format!("{} s", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// A legend entry at the right of the plot.
fn legend(out: &mut String, row: usize, colour: &str, name: &str) {
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
        LEFT + PLOT_W + 8.0,
        TOP + 12.0 + 14.0 * row as f64,
        escape(name)
    );
}

/// The memory timeline as an SVG line chart: resident set and heap in use.
fn timeline_chart(points: &[MemoryTimelinePoint]) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return "<p class=\"muted\">No memory timeline: it runs with \
                `timeline_interval_ms` set (the default) once profiling is initialised.</p>"
            .to_owned();
    };
    let span = (last.unix_ms.saturating_sub(first.unix_ms)).max(1) as f64;
    let top = points
        .iter()
        .flat_map(|p| [p.rss_bytes, p.current_bytes])
        .flatten()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let line = |value: fn(&MemoryTimelinePoint) -> Option<u64>| -> String {
        points
            .iter()
            .filter_map(|p| {
                let v = value(p)?;
                let (x, y) = plot_xy((p.unix_ms - first.unix_ms) as f64 / span, v as f64 / top);
                Some(format!("{x:.1},{y:.1}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = chart_open(
        "memory-timeline",
        "memory timeline",
        span / 1000.0,
        top,
        |v| bytes(Some(v as i64)),
    );
    let _ = write!(
        out,
        "<polyline class=\"rss\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" points=\"{}\"/>\
         <polyline class=\"heap\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{}\"/>",
        line(|p| p.rss_bytes),
        line(|p| p.current_bytes),
    );
    legend(&mut out, 0, "#d62728", "resident");
    legend(&mut out, 1, "#1f77b4", "heap in use");
    out.push_str("</svg>");
    out
}

/// Agents drawn in the CPU-over-time chart (those with the most CPU).
const CHART_AGENTS: usize = 8;
const CHART_COLOURS: [&str; CHART_AGENTS] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Each agent's CPU per window, in cores (CPU time over the window's
/// length), as an SVG line chart.
fn agent_cpu_chart(windows: &[WindowFigures]) -> String {
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return "<p class=\"muted\">No windows yet: they come with continuous profiling \
                (`cpu.continuous = true`).</p>"
            .to_owned();
    };
    let label = |agent: &Option<String>| agent.clone().unwrap_or_else(|| "(none)".to_owned());
    let mut totals = std::collections::BTreeMap::<String, u64>::new();
    for a in windows.iter().flat_map(|w| &w.agents) {
        *totals.entry(label(&a.agent)).or_default() += a.cpu_ns.unwrap_or(0);
    }
    let mut agents: Vec<_> = totals.into_iter().filter(|(_, cpu)| *cpu > 0).collect();
    agents.sort_by_key(|(_, cpu)| std::cmp::Reverse(*cpu));
    agents.truncate(CHART_AGENTS);
    let cores = |w: &WindowFigures, agent: &str| {
        let length_ns = (w.end_unix_ms.saturating_sub(w.start_unix_ms)).max(1) as f64 * 1e6;
        let cpu = w
            .agents
            .iter()
            .filter(|a| label(&a.agent) == agent)
            .map(|a| a.cpu_ns.unwrap_or(0))
            .sum::<u64>();
        cpu as f64 / length_ns
    };
    let top = windows
        .iter()
        .flat_map(|w| agents.iter().map(move |(agent, _)| cores(w, agent)))
        .fold(0.0f64, f64::max)
        .max(0.01);
    // One window has no stretch between windows to show: its own length.
    let span = if windows.len() == 1 {
        last.end_unix_ms.saturating_sub(last.start_unix_ms)
    } else {
        last.end_unix_ms.saturating_sub(first.end_unix_ms)
    }
    .max(1) as f64;
    let mut out = chart_open(
        "agent-cpu",
        "CPU per agent over time",
        span / 1000.0,
        top,
        |cores| format!("{cores:.2} cores"),
    );
    for (i, ((agent, _), colour)) in agents.iter().zip(CHART_COLOURS).enumerate() {
        let points: Vec<_> = windows
            .iter()
            .map(|w| {
                let x = if windows.len() == 1 {
                    0.5
                } else {
                    (w.end_unix_ms - first.end_unix_ms) as f64 / span
                };
                plot_xy(x, cores(w, agent) / top)
            })
            .collect();
        let line = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            out,
            "<polyline class=\"agent\" data-agent=\"{}\" fill=\"none\" stroke=\"{colour}\" \
             stroke-width=\"1.5\" points=\"{line}\"/>",
            escape(agent)
        );
        for (x, y) in &points {
            let _ = write!(
                out,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\" fill=\"{colour}\"/>"
            );
        }
        legend(&mut out, i, colour, agent);
    }
    out.push_str("</svg>");
    out
}

impl<'a> HtmlReport<'a> {
    /// A page of `report`.
    pub fn new(report: &'a Report) -> Self {
        Self {
            report,
            title: "agentprof report".to_owned(),
            facts: Vec::new(),
            flamegraphs: Vec::new(),
            heap_sites: Vec::new(),
            cpu_history: Vec::new(),
            slowest: Vec::new(),
            invocation_pages: false,
        }
    }

    /// The page's title (e.g. the service's name).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// A line of the header: host, process start, window, sampler rate.
    pub fn fact(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.facts.push((name.into(), value.into()));
        self
    }

    /// A CPU flamegraph (inferno SVG) under `label` (`all` or an agent).
    pub fn flamegraph(mut self, label: impl Into<String>, svg: &[u8]) -> Self {
        self.flamegraphs
            .push((label.into(), inline_svg(&String::from_utf8_lossy(svg))));
        self
    }

    /// The heap profile's allocation sites (the page shows the top ones by
    /// bytes in use).
    pub fn heap_sites(mut self, sites: Vec<HeapSite>) -> Self {
        self.heap_sites = sites;
        self
    }

    /// Windows of continuous profiling, oldest first: the page charts each
    /// agent's CPU over them.
    pub fn cpu_history(mut self, windows: Vec<WindowFigures>) -> Self {
        self.cpu_history = windows;
        self
    }

    /// Embeds these exemplars (figures and callee tree) in a "Slowest
    /// calls" section, and links each function row to its own: for a page
    /// read away from the service, such as a window's report file.
    pub fn slowest_calls(mut self, details: Vec<InvocationDetail>) -> Self {
        self.slowest = details;
        self
    }

    /// Links each function row's slowest calls to their pages on the live
    /// endpoint (`/debug/agentprof/invocations/{id}`).
    pub fn link_invocation_pages(mut self) -> Self {
        self.invocation_pages = true;
        self
    }

    /// Where an exemplar of a row links to, if anywhere.
    fn exemplar_link(&self, id: u64) -> Option<String> {
        if self.invocation_pages {
            Some(Links::Pages.href(id))
        } else if self.slowest.iter().any(|d| d.invocation.id == id) {
            Some(Links::Anchors.href(id))
        } else {
            None
        }
    }

    fn render_slowest(&self, out: &mut String) {
        if self.slowest.is_empty() {
            return;
        }
        out.push_str("<section id=\"slowest\"><h2>Slowest calls</h2>");
        for detail in &self.slowest {
            let r = &detail.invocation;
            let _ = write!(
                out,
                "<details id=\"invocation-{}\"><summary>{} #{}: {} wall, {} cpu</summary>",
                r.id,
                escape(&r.function),
                r.id,
                nanos(Some(r.wall_ns)),
                nanos(r.cpu_ns)
            );
            invocation_page::figures(out, detail);
            invocation_page::callee_tree_table(out, &detail.tree);
            out.push_str("</details>");
        }
        out.push_str("</section>");
    }

    /// The page.
    pub fn render(&self) -> String {
        let r = self.report;
        let mut out = String::with_capacity(64 << 10);
        let _ = write!(
            out,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
            escape(&self.title),
            escape(&self.title)
        );
        self.render_header(&mut out);
        self.render_tables(&mut out);
        self.render_slowest(&mut out);
        out.push_str("<section id=\"memory\"><h2>Memory over time</h2>");
        out.push_str(&timeline_chart(&r.memory_timeline));
        out.push_str("</section><section id=\"cpu-over-time\"><h2>CPU per agent over time</h2>");
        out.push_str(&agent_cpu_chart(&self.cpu_history));
        out.push_str("</section>");
        self.render_flamegraphs(&mut out);
        self.render_heap(&mut out);
        let _ = write!(out, "<script>{SCRIPT}</script></body></html>");
        out
    }

    fn render_header(&self, out: &mut String) {
        let r = self.report;
        let d = &r.dropped;
        let mut facts = self.facts.clone();
        if let Some(clock) = r.cpu_clock {
            facts.push(("CPU clock".to_owned(), clock.as_str().to_owned()));
        }
        if let Some(w) = &r.window {
            let number = format!(
                "#{} ({} s)",
                w.sequence,
                (w.end_unix_ms.saturating_sub(w.start_unix_ms) + 500) / 1000
            );
            // One line: the number before the times a caller may have given.
            match facts.iter_mut().find(|(name, _)| name == "window") {
                Some((_, times)) => *times = format!("{number}, {times}"),
                None => facts.push(("window".to_owned(), number)),
            }
        }
        if let Some(p) = &r.profiler {
            let line = super::text::ProfilerLine(p).to_string();
            let cost = line.trim_start_matches("agentprof itself: ").to_owned();
            facts.push(("agentprof itself".to_owned(), cost));
        }
        if let Some(m) = &r.memory {
            facts.push((
                "heap".to_owned(),
                format!(
                    "{} in use, {} peak",
                    bytes(Some(m.current_usage as i64)),
                    bytes(Some(m.peak_usage as i64))
                ),
            ));
        }
        facts.push((
            "bounds".to_owned(),
            format!(
                "label values: {} cut to the length limit, {} past the per-key limit; \
                 (function, agent) rows past the cap: {}; running invocations not listed \
                 (registry full): {}",
                d.label_values_truncated,
                d.label_values_overflowed,
                d.rows_overflowed,
                d.running_untracked
            ),
        ));
        facts.push((
            "recent-invocation ring".to_owned(),
            format!(
                "{} older entries replaced by newer ones (normal: it keeps the latest)",
                thousands(d.recent_invocations_evicted)
            ),
        ));
        out.push_str("<dl id=\"facts\">");
        for (name, value) in &facts {
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(value));
        }
        out.push_str("</dl>");
    }

    /// The window's own figures first when the report is a window's, with
    /// the cumulative tables one click away; otherwise the cumulative
    /// tables, labelled as such.
    fn render_tables(&self, out: &mut String) {
        let r = self.report;
        match &r.window {
            Some(w) => {
                let length = (w.end_unix_ms.saturating_sub(w.start_unix_ms) + 500) / 1000;
                let scope = format!("this window (#{}, {length} s)", w.sequence);
                render_window_agents(out, w, &scope);
                render_window_functions(out, w, &scope);
                out.push_str(
                    "<details id=\"since-start\"><summary>Since start: cumulative figures, \
                     percentiles and memory</summary>",
                );
                self.render_agents(out, "since start");
                self.render_functions(out, "since start");
                out.push_str("</details>");
            }
            None => {
                self.render_agents(out, "since start");
                self.render_functions(out, "since start");
            }
        }
    }

    fn render_agents(&self, out: &mut String, scope: &str) {
        let _ = write!(
            out,
            "<section class=\"agents\" data-scope=\"{}\"><h2>Agents, {}</h2><table class=\"sortable\">",
            scope_id(scope),
            escape(scope)
        );
        let mut columns = vec![
            "agent",
            "",
            "calls",
            "roots",
            "active",
            "errors",
            "cpu",
            "share",
            "active cpu",
            "wall",
            "wall p50",
            "wall p99",
            "allocated",
            "peak",
        ];
        let inuse = self.report.agents.iter().any(|a| a.inuse_bytes.is_some());
        if inuse {
            columns.push("in use");
        }
        header(out, &columns);
        let (agents, total) = by_cpu(&self.report.agents, |a| a.cpu_ns);
        for a in agents {
            out.push_str("<tr>");
            text(out, a.agent.as_deref().unwrap_or("(none)"));
            text(out, "");
            number(out, Some(a.calls.into()), &a.calls.to_string());
            number(out, Some(a.root_calls.into()), &a.root_calls.to_string());
            number(out, Some(a.active.into()), &a.active.to_string());
            number(out, Some(a.errors.into()), &a.errors.to_string());
            number(out, a.cpu_ns.map(i128::from), &nanos(a.cpu_ns));
            share(out, a.cpu_ns, total);
            number(
                out,
                a.running.cpu_ns.map(i128::from),
                &nanos(a.running.cpu_ns),
            );
            number(out, Some(a.wall_ns.into()), &nanos(Some(a.wall_ns)));
            number(out, Some(a.wall_ns_p50.into()), &nanos(Some(a.wall_ns_p50)));
            number(out, Some(a.wall_ns_p99.into()), &nanos(Some(a.wall_ns_p99)));
            unsigned_bytes(out, a.alloc_bytes);
            unsigned_bytes(out, a.peak_bytes);
            if inuse {
                unsigned_bytes(out, a.inuse_bytes);
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></section>");
    }

    fn render_functions(&self, out: &mut String, scope: &str) {
        let _ = write!(
            out,
            "<section class=\"functions\" data-scope=\"{}\"><h2>Functions, {}, by self CPU</h2>\
             <table class=\"sortable\">",
            scope_id(scope),
            escape(scope)
        );
        let mut columns = vec![
            "agent",
            "function",
            "calls",
            "active",
            "errors",
            "self cpu",
            "share",
            "cpu",
            "active cpu",
            "wall p50",
            "wall p99",
            "cpu p99",
            "sampled",
            "allocated",
            "peak",
            "net p50",
            "net max",
        ];
        let links = self.invocation_pages || !self.slowest.is_empty();
        if links {
            columns.push("slowest calls");
        }
        let inuse = self
            .report
            .functions
            .iter()
            .any(|f| f.inuse_bytes.is_some());
        if inuse {
            columns.push("in use");
        }
        header(out, &columns);
        let (functions, total) = by_cpu(&self.report.functions, |f| f.self_cpu_ns);
        for f in functions {
            out.push_str("<tr>");
            text(out, f.agent.as_deref().unwrap_or("(none)"));
            text(out, &f.function);
            number(out, Some(f.calls.into()), &f.calls.to_string());
            number(out, Some(f.active.into()), &f.active.to_string());
            number(out, Some(f.errors.into()), &f.errors.to_string());
            number(out, f.self_cpu_ns.map(i128::from), &nanos(f.self_cpu_ns));
            share(out, f.self_cpu_ns, total);
            number(out, f.cpu_ns.map(i128::from), &nanos(f.cpu_ns));
            number(
                out,
                f.running.cpu_ns.map(i128::from),
                &nanos(f.running.cpu_ns),
            );
            number(out, Some(f.wall_ns_p50.into()), &nanos(Some(f.wall_ns_p50)));
            number(out, Some(f.wall_ns_p99.into()), &nanos(Some(f.wall_ns_p99)));
            number(out, f.cpu_ns_p99.map(i128::from), &nanos(f.cpu_ns_p99));
            number(
                out,
                f.sampled_cpu_ns.map(i128::from),
                &nanos(f.sampled_cpu_ns),
            );
            unsigned_bytes(out, f.alloc_bytes);
            unsigned_bytes(out, f.peak_bytes);
            number(
                out,
                f.net_bytes_p50.map(i128::from),
                &bytes(f.net_bytes_p50),
            );
            number(
                out,
                f.net_bytes_max.map(i128::from),
                &bytes(f.net_bytes_max),
            );
            if links {
                out.push_str("<td class=\"text exemplars\">");
                for e in f.exemplars.iter().take(3) {
                    if let Some(href) = self.exemplar_link(e.id) {
                        let _ = write!(
                            out,
                            "<a href=\"{}\" title=\"{} wall, {} cpu\">#{}</a> ",
                            escape(&href),
                            nanos(Some(e.wall_ns)),
                            nanos(e.cpu_ns),
                            e.id
                        );
                    }
                }
                out.push_str("</td>");
            }
            if inuse {
                unsigned_bytes(out, f.inuse_bytes);
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></section>");
    }

    fn render_flamegraphs(&self, out: &mut String) {
        out.push_str("<section id=\"flamegraphs\"><h2>CPU flamegraph</h2>");
        if self.flamegraphs.is_empty() {
            out.push_str(
                "<p class=\"muted\">No CPU profile in this page: it comes with the CPU \
                 sampler (continuous windows, or the live endpoint).</p></section>",
            );
            return;
        }
        out.push_str("<label>agent <select id=\"flame-agent\">");
        for (label, _) in &self.flamegraphs {
            let _ = write!(
                out,
                "<option value=\"{}\">{}</option>",
                escape(label),
                escape(label)
            );
        }
        out.push_str("</select></label>");
        for (label, svg) in &self.flamegraphs {
            let _ = write!(
                out,
                "<div class=\"flame\" data-agent=\"{}\"><h3>{}</h3>{svg}</div>",
                escape(label),
                escape(label)
            );
        }
        out.push_str("</section>");
    }

    fn render_heap(&self, out: &mut String) {
        out.push_str("<section id=\"heap\"><h2>Heap</h2>");
        if self.heap_sites.is_empty() {
            out.push_str(
                "<p class=\"muted\">No heap profile in this page: it comes with the heap \
                 profiler (`heap_profiling = true`).</p>",
            );
        } else {
            out.push_str("<h3>Top allocation sites (in use)</h3><table class=\"sortable\">");
            header(out, &["function", "agent", "in use", "allocated"]);
            let mut sites = self.heap_sites.clone();
            sites.sort_by_key(|s| std::cmp::Reverse(s.inuse_bytes));
            for s in sites.iter().take(25) {
                out.push_str("<tr>");
                text(out, &s.function);
                text(out, s.agent.as_deref().unwrap_or("(none)"));
                number(out, Some(s.inuse_bytes.into()), &bytes(Some(s.inuse_bytes)));
                number(out, Some(s.alloc_bytes.into()), &bytes(Some(s.alloc_bytes)));
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table>");
        }
        out.push_str("<h3>Heap growth between the last two snapshots</h3>");
        if self.report.heap_growth.is_empty() {
            out.push_str("<p class=\"muted\">None measured.</p>");
        } else {
            out.push_str("<table class=\"sortable\">");
            header(out, &["function", "agent", "grew", "in use"]);
            for g in &self.report.heap_growth {
                out.push_str("<tr>");
                text(out, &g.function);
                text(out, g.agent.as_deref().unwrap_or("(none)"));
                number(
                    out,
                    Some(g.growth_bytes.into()),
                    &bytes(Some(g.growth_bytes)),
                );
                number(out, Some(g.inuse_bytes.into()), &bytes(Some(g.inuse_bytes)));
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table>");
        }
        out.push_str("</section>");
    }
}

impl HtmlReport<'_> {
    /// Adds what the profilers hold: the CPU flamegraph of every sample,
    /// then of each of the five agents with the most sampled CPU, and the
    /// heap profile's allocation sites.
    pub fn profiles(
        mut self,
        cpu: Option<&crate::cpu::CpuReport>,
        heap: Option<&crate::memory::HeapProfile>,
    ) -> Self {
        if let Some(cpu) = cpu.filter(|c| c.sample_count() > 0) {
            self = self.fact(
                "CPU sampler",
                format!("{:.0} Hz delivered", cpu.delivered_hz()),
            );
            if let Ok(svg) = cpu.flamegraph_svg() {
                self = self.flamegraph("all", &svg);
            }
            let mut agents: Vec<_> = self
                .report
                .agents
                .iter()
                .filter_map(|a| Some((a.agent.clone()?, a.sampled_cpu_ns.unwrap_or(0))))
                .filter(|(_, sampled)| *sampled > 0)
                .collect();
            agents.sort_by_key(|a| std::cmp::Reverse(a.1));
            for (agent, _) in agents.into_iter().take(5) {
                if let Ok(svg) = cpu.agent_flamegraph_svg(&agent) {
                    self = self.flamegraph(agent, &svg);
                }
            }
        }
        if let Some(heap) = heap {
            let mut sites: std::collections::BTreeMap<(String, Option<&str>), (i64, i64)> =
                Default::default();
            for stack in &heap.stacks {
                let site = sites.entry((stack.site(), stack.agent)).or_default();
                site.0 += stack.inuse_estimate().1;
                site.1 += stack.alloc_estimate().1;
            }
            let sites = sites
                .into_iter()
                .map(|((function, agent), (inuse_bytes, alloc_bytes))| HeapSite {
                    function,
                    agent: agent.map(str::to_owned),
                    inuse_bytes,
                    alloc_bytes,
                })
                .collect();
            self = self.heap_sites(sites);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_svgs_lose_their_scripts() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let svg = "<?xml version=\"1.0\"?><svg onload=\"init(evt)\" x=\"1\"><script>\
                   var a = 1;</script><rect onclick=\"s(this)\"/></svg>";
        assert_eq!(inline_svg(svg), "<svg x=\"1\"><rect/></svg>");
    }

    #[test]
    fn a_message_svg_is_a_whole_svg_with_its_text_escaped() {
        let svg = String::from_utf8(message_svg("CPU", "No flamegraph for this window")).unwrap();
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("No flamegraph for this window"), "{svg}");
        let escaped = String::from_utf8(message_svg("a<b", "x & \"y\"")).unwrap();
        assert!(escaped.contains(">a&lt;b<"), "{escaped}");
        assert!(escaped.contains(">x &amp; &quot;y&quot;<"), "{escaped}");
    }
}
