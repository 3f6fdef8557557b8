//! What the endpoint serves:
//!
//! | path | what |
//! |---|---|
//! | `/debug/pprof/` | an index of the rest |
//! | `/debug/pprof/profile?seconds=N&hz=H` | CPU profile of the next N s, gzipped pprof |
//! | `/debug/pprof/heap` | the sampled heap now, gzipped pprof |
//! | `/debug/agentprof/` | the HTML report, live |
//! | `/debug/agentprof/report` | the report as JSON |
//! | `/debug/agentprof/report.txt` | the report as a table |
//! | `/debug/agentprof/flamegraph.svg?seconds=N&agent=A&function=F` | a flamegraph of the next N s |
//! | `/debug/agentprof/invocations/{id}` | one of the slowest calls: figures, callee tree, flamegraph (`?format=json`) |
//! | `/debug/agentprof/invocations/{id}/pprof` | its CPU samples, gzipped pprof |
//!
//! Parameters of Go's endpoint that mean nothing here (`gc`, `debug`) are
//! ignored; a bad value of one that does is a 400 naming it.

// A refusal is the reply itself, built at most once per request: boxing
// it would buy nothing.
#![allow(clippy::result_large_err)]

use std::sync::atomic::Ordering::{AcqRel, Relaxed, Release};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::State;
use crate::cpu::{CpuReport, CpuTap};
use crate::error::Error;
use crate::memory::HeapProfiler;

type Reply = Response<Full<Bytes>>;

/// `seconds` when a CPU profile request names none (Go's default).
const DEFAULT_PROFILE_SECONDS: u64 = 30;
/// `seconds` of a flamegraph request that names none.
const DEFAULT_FLAMEGRAPH_SECONDS: u64 = 10;
/// Sampling for the live page when no collector window is at hand.
const LIVE_PAGE_SECONDS: u64 = 2;

pub(super) async fn respond(request: Request<Incoming>, state: Arc<State>) -> Reply {
    state.counters.requests.fetch_add(1, Relaxed);
    if let Some(token) = &state.token {
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if !super::access::authorized(header, token) {
            state.counters.unauthorized.fetch_add(1, Relaxed);
            let mut reply = text(
                StatusCode::UNAUTHORIZED,
                "401 unauthorized: send the endpoint's token \
                 (Authorization: Bearer TOKEN, or http://user:TOKEN@host/ for go tool pprof)\n",
            );
            reply.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"agentprof\""),
            );
            return reply;
        }
    }
    // Only requests that passed the token check take a serving permit:
    // unauthenticated connections cannot shut authenticated ones out.
    let Ok(_serving) = state.serving.clone().try_acquire_owned() else {
        state.counters.connections_refused.fetch_add(1, Relaxed);
        return unavailable();
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut reply = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "405: only GET and HEAD are served\n",
        );
        reply
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    let query = Query::parse(request.uri().query());
    let head = request.method() == Method::HEAD;
    let mut reply = match request.uri().path() {
        "/debug/pprof" | "/debug/pprof/" => index(),
        "/debug/pprof/profile" => cpu_profile(&query, &state).await,
        "/debug/pprof/heap" => heap_profile().await,
        "/debug/agentprof" | "/debug/agentprof/" => live_page(&query, &state).await,
        "/debug/agentprof/report" => report_json().await,
        "/debug/agentprof/report.txt" => report_text().await,
        "/debug/agentprof/flamegraph.svg" => flamegraph(&query, &state).await,
        // Browsers ask for it; an empty answer keeps their logs clean.
        "/favicon.ico" => reply(StatusCode::NO_CONTENT, "image/x-icon", Vec::new()),
        other if other.starts_with(INVOCATIONS) => {
            invocation(&other[INVOCATIONS.len()..], &query).await
        }
        other => text(
            StatusCode::NOT_FOUND,
            format!("404: nothing at {other}; see /debug/pprof/\n"),
        ),
    };
    reply
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if head {
        *reply.body_mut() = Full::new(Bytes::new());
    }
    reply
}

/// Where one invocation's page lives, its id after it.
const INVOCATIONS: &str = "/debug/agentprof/invocations/";

/// `/debug/agentprof/invocations/{id}` and `.../{id}/pprof`.
async fn invocation(rest: &str, query: &Query) -> Reply {
    let (id_text, pprof) = match rest.strip_suffix("/pprof") {
        Some(id) => (id, true),
        None => (rest.trim_end_matches('/'), false),
    };
    let Ok(id) = id_text.parse::<u64>() else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "400: {id_text:?} is not an invocation id (a whole number, as report rows' \
                 `exemplars` and span fields give it)\n"
            ),
        );
    };
    let format = query.get("format").unwrap_or("html").to_owned();
    if !pprof && !matches!(format.as_str(), "html" | "json") {
        return text(
            StatusCode::BAD_REQUEST,
            format!("400: format={format:?}: html or json\n"),
        );
    }
    let detail = match blocking(move || crate::report::invocation_detail(id)).await {
        Ok(detail) => detail,
        // Not kept is an answer about the id, not a failure of the server.
        Err(e @ Error::InvocationNotKept { .. }) => {
            return text(StatusCode::NOT_FOUND, format!("404: {e}\n"))
        }
        Err(e) => return error_reply(&e),
    };
    if pprof {
        let Some(profile) = detail.profile else {
            return text(
                StatusCode::NOT_FOUND,
                format!(
                    "404: invocation {id} has no CPU profile: no CPU sampler was running \
                     (telemetry.profiling.cpu.continuous, a CpuProfiler, or a profile request)\n"
                ),
            );
        };
        return match blocking(move || Ok(profile.pprof_gzip())).await {
            Ok(body) => {
                let mut reply = reply(StatusCode::OK, "application/octet-stream", body);
                if let Ok(value) = HeaderValue::from_str(&format!(
                    "attachment; filename=\"invocation-{id}.pb.gz\""
                )) {
                    reply
                        .headers_mut()
                        .insert(header::CONTENT_DISPOSITION, value);
                }
                reply
            }
            Err(e) => error_reply(&e),
        };
    }
    let rendered = blocking(move || {
        if format == "json" {
            detail.to_json().map(|json| (true, json))
        } else {
            Ok((false, detail.to_html()))
        }
    })
    .await;
    match rendered {
        Ok((true, json)) => reply(StatusCode::OK, "application/json", json.into_bytes()),
        Ok((false, html)) => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            html.into_bytes(),
        ),
        Err(e) => error_reply(&e),
    }
}

/// 503: every serving permit is taken, or the connection was closed to
/// make room while its head arrived.
pub(super) fn unavailable() -> Reply {
    let mut reply = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "503: the endpoint is serving as many requests as it allows; retry shortly\n",
    );
    reply
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    reply
}

fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    reply(
        status,
        "text/plain; charset=utf-8",
        body.into().into_bytes(),
    )
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

fn error_reply(e: &Error) -> Reply {
    let status = match e {
        Error::Unsupported { .. } | Error::Busy { .. } | Error::AlreadyRunning { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    text(status, format!("{}: {e}\n", status.as_u16()))
}

/// Runs CPU-heavy work off the endpoint's only async thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(Error::Render {
            what: "the response".to_owned(),
            message: e.to_string(),
        })
    })
}

/// The query string's parameters.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A whole number of seconds: `default` when absent, at most the
    /// configured cap; `(seconds, capped)`.
    fn seconds(&self, default: u64, cap: u64) -> Result<(u64, bool), Reply> {
        let seconds = match self.get("seconds") {
            None => default,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&s| s > 0)
                .ok_or_else(|| {
                    text(
                        StatusCode::BAD_REQUEST,
                        format!("400: seconds={v:?} is not a whole number of seconds above 0\n"),
                    )
                })?,
        };
        Ok((seconds.min(cap), seconds > cap))
    }

    fn hz(&self) -> Result<Option<u32>, Reply> {
        let Some(v) = self.get("hz") else {
            return Ok(None);
        };
        let bad = |why: String| text(StatusCode::BAD_REQUEST, format!("400: hz={v:?}: {why}\n"));
        let hz = v
            .trim()
            .parse::<u32>()
            .map_err(|_| bad("not a whole number".to_owned()))?;
        crate::config::check_parameter(crate::config::keys::CPU_FREQUENCY, hz.into(), "hz")
            .map_err(|e| bad(e.to_string()))?;
        Ok(Some(hz))
    }
}

/// Holds the one profile slot while a profile is being taken.
struct ProfileSlot(Arc<State>);

impl ProfileSlot {
    fn take(state: &Arc<State>) -> Result<ProfileSlot, Reply> {
        if state.profiling.swap(true, AcqRel) {
            state.counters.profiles_refused.fetch_add(1, Relaxed);
            return Err(text(
                StatusCode::CONFLICT,
                "409: a CPU profile is already being taken; one runs at a time, \
                 try again when it finishes\n",
            ));
        }
        Ok(ProfileSlot(state.clone()))
    }
}

impl Drop for ProfileSlot {
    fn drop(&mut self) {
        self.0.profiling.store(false, Release);
    }
}

/// A CPU profile of the next `seconds` from the running sampler (or one
/// started for it), with what was asked and what was done in headers.
struct TakenProfile {
    report: CpuReport,
    seconds: u64,
    capped: bool,
    hz_ignored: bool,
    shared: bool,
}

/// What a reply says of how its profile was taken.
struct TakenHeaders {
    seconds: u64,
    capped: bool,
    hz: u32,
    hz_ignored: bool,
    shared: bool,
}

impl TakenProfile {
    /// The report, and the headers that describe it.
    fn split(self) -> (CpuReport, TakenHeaders) {
        let headers = TakenHeaders {
            seconds: self.seconds,
            capped: self.capped,
            hz: self.report.requested_hz,
            hz_ignored: self.hz_ignored,
            shared: self.shared,
        };
        (self.report, headers)
    }
}

impl TakenHeaders {
    fn apply(&self, reply: &mut Reply) {
        let headers = reply.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set("x-agentprof-seconds", self.seconds.to_string());
        set("x-agentprof-seconds-capped", self.capped.to_string());
        set("x-agentprof-hz", self.hz.to_string());
        set("x-agentprof-hz-ignored", self.hz_ignored.to_string());
        set("x-agentprof-shared-sampler", self.shared.to_string());
    }
}

async fn take_profile(
    query: &Query,
    state: &Arc<State>,
    default_seconds: u64,
) -> Result<TakenProfile, Reply> {
    let (seconds, capped) = query.seconds(default_seconds, state.max_seconds)?;
    let hz = query.hz()?;
    let _slot = ProfileSlot::take(state)?;
    let tap = CpuTap::attach(hz.unwrap_or(state.default_hz)).map_err(|e| error_reply(&e))?;
    let hz_ignored = hz.is_some_and(|hz| hz != tap.sampling_hz());
    let shared = tap.is_shared();
    // A client that goes away drops this future, and with it the tap.
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let report = blocking(move || tap.finish())
        .await
        .map_err(|e| error_reply(&e))?;
    Ok(TakenProfile {
        report,
        seconds,
        capped,
        hz_ignored,
        shared,
    })
}

async fn cpu_profile(query: &Query, state: &Arc<State>) -> Reply {
    let taken = match take_profile(query, state, DEFAULT_PROFILE_SECONDS).await {
        Ok(taken) => taken,
        Err(reply) => return reply,
    };
    let (report, taken) = taken.split();
    let body = match blocking(move || Ok(report.pprof_gzip())).await {
        Ok(body) => body,
        Err(e) => return error_reply(&e),
    };
    let mut reply = reply(StatusCode::OK, "application/octet-stream", body);
    reply.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"profile.pb.gz\""),
    );
    taken.apply(&mut reply);
    reply
}

async fn heap_profile() -> Reply {
    let Some(heap) = HeapProfiler::running() else {
        return text(
            StatusCode::NOT_FOUND,
            "404: the heap profiler is off; set telemetry.profiling.memory.heap_profiling = true \
             (and install agentprof::Allocator)\n",
        );
    };
    match blocking(move || Ok(heap.snapshot_aside().to_pprof_gzip())).await {
        Ok(body) => {
            let mut reply = reply(StatusCode::OK, "application/octet-stream", body);
            reply.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"heap.pb.gz\""),
            );
            reply
        }
        Err(e) => error_reply(&e),
    }
}

async fn report_json() -> Reply {
    match blocking(|| crate::report::report().to_json_pretty()).await {
        Ok(json) => reply(StatusCode::OK, "application/json", json.into_bytes()),
        Err(e) => error_reply(&e),
    }
}

async fn report_text() -> Reply {
    match blocking(|| Ok(crate::report::report().to_string())).await {
        Ok(table) => text(StatusCode::OK, table),
        Err(e) => error_reply(&e),
    }
}

async fn flamegraph(query: &Query, state: &Arc<State>) -> Reply {
    let taken = match take_profile(query, state, DEFAULT_FLAMEGRAPH_SECONDS).await {
        Ok(taken) => taken,
        Err(reply) => return reply,
    };
    let filters: Vec<(&'static str, String)> = ["agent", "function"]
        .into_iter()
        .filter_map(|key| Some((key, query.get(key)?.to_owned())))
        .collect();
    let (report, taken) = taken.split();
    let svg = blocking(move || {
        let selected = filters
            .iter()
            .fold(report, |r, (key, value)| r.filter_label(key, value));
        if selected.sample_count() == 0 {
            return Ok(None);
        }
        selected.flamegraph_svg().map(Some)
    })
    .await;
    let mut reply = match svg {
        Ok(Some(svg)) => reply(StatusCode::OK, "image/svg+xml", svg),
        Ok(None) => text(
            StatusCode::NOT_FOUND,
            format!(
                "404: no CPU samples matched in {} s{}\n",
                taken.seconds,
                describe_filters(query)
            ),
        ),
        Err(e) => error_reply(&e),
    };
    taken.apply(&mut reply);
    reply
}

fn describe_filters(query: &Query) -> String {
    ["agent", "function"]
        .into_iter()
        .filter_map(|key| Some(format!(" {key}={:?}", query.get(key)?)))
        .collect()
}

/// The HTML report now: the collector's last window for the flamegraphs
/// when there is one (no waiting), else a short profile taken for the page;
/// `?seconds=N` always takes a fresh one.
async fn live_page(query: &Query, state: &Arc<State>) -> Reply {
    let asked = query.get("seconds").is_some();
    let last_window = if asked {
        None
    } else {
        super::super::history::last_cpu()
    };
    let mut facts = Vec::new();
    let cpu = match last_window {
        Some(cpu) => {
            facts.push((
                "CPU profile".to_owned(),
                format!("the collector's last window ({} s)", cpu.duration.as_secs()),
            ));
            Some(cpu)
        }
        None => match take_profile(query, state, LIVE_PAGE_SECONDS).await {
            Ok(taken) => {
                facts.push((
                    "CPU profile".to_owned(),
                    format!("the {} s before this page", taken.seconds),
                ));
                Some(Arc::new(taken.report))
            }
            Err(refused) if refused.status() == StatusCode::CONFLICT => {
                facts.push((
                    "CPU profile".to_owned(),
                    "none: another profile request is running".to_owned(),
                ));
                None
            }
            Err(other) => return other,
        },
    };
    let page = blocking(move || {
        let report = crate::report::report();
        let heap = HeapProfiler::running().map(|h| h.snapshot_aside());
        Ok(super::super::page::render(
            &report,
            cpu.as_deref(),
            heap.as_ref(),
            facts,
            super::super::page::SlowestCalls::LivePages,
        ))
    })
    .await;
    match page {
        Ok(html) => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            html.into_bytes(),
        ),
        Err(e) => error_reply(&e),
    }
}

fn index() -> Reply {
    const ROWS: &[(&str, &str)] = &[
        (
            "/debug/pprof/profile?seconds=30",
            "CPU profile of the next N seconds (gzipped pprof; hz=H sets the rate when no sampler runs)",
        ),
        (
            "/debug/pprof/heap",
            "the sampled heap now: in-use and allocated objects and bytes (gzipped pprof)",
        ),
        (
            "/debug/agentprof/",
            "the HTML report: agents, functions, memory, CPU over time, flamegraphs, heap",
        ),
        ("/debug/agentprof/report", "the report as JSON"),
        (
            "/debug/agentprof/invocations/ID",
            "one of the slowest calls (ids: each function row's exemplars): figures, callee tree, \
             flamegraph; ?format=json; /pprof for its CPU samples",
        ),
        ("/debug/agentprof/report.txt", "the report as a table"),
        (
            "/debug/agentprof/flamegraph.svg?seconds=10",
            "a CPU flamegraph of the next N seconds, filtered by agent=A and function=F",
        ),
    ];
    let mut html = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>/debug/pprof/</title></head><body><h1>/debug/pprof/</h1><table>",
    );
    for (path, what) in ROWS {
        html.push_str(&format!(
            "<tr><td><a href=\"{path}\">{path}</a></td><td>{what}</td></tr>"
        ));
    }
    html.push_str(
        "</table><p>go tool pprof http://HOST:PORT/debug/pprof/profile?seconds=30</p></body></html>",
    );
    reply(
        StatusCode::OK,
        "text/html; charset=utf-8",
        html.into_bytes(),
    )
}
