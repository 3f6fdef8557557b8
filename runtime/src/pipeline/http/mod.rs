//! The live endpoint: `go tool pprof` and a browser against a running
//! service (`/debug/pprof/*`, `/debug/agentprof/*`; see [`routes`]).
//!
//! hyper serves it on a private current-thread tokio runtime on a thread of
//! its own, so it needs nothing of the application's runtime and an
//! application without one can have it. Bounds: a client has
//! [`HEADER_TIMEOUT`] to send its request head, at most [`MAX_HEAD_BYTES`]
//! of it; connections still sending a head have a budget of their own,
//! fair between peers ([`admission`]); a connection serves one request and
//! lives at most the longest profile plus [`CONNECTION_SLACK`]; at most
//! [`MAX_CONNECTIONS`] requests that passed the token check are served at
//! once (more are answered 503 and counted). A slow client holds only its
//! own connection: everything waits asynchronously, and the work that
//! takes CPU (reports, symbolization, encoding) runs on a small blocking
//! pool.

mod access;
mod admission;
mod routes;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, Semaphore};

use crate::config::{HttpConfig, Secret};
use crate::error::{Error, Result};
use crate::fork::StartedIn;

/// Time a client has to send a request's head.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a request head (request line and headers) read at most.
pub(crate) const MAX_HEAD_BYTES: usize = 16 << 10;
/// Headers of one request.
const MAX_HEADERS: usize = 64;
/// Requests served at once, once their head arrived and passed the token
/// check.
pub(crate) const MAX_CONNECTIONS: usize = 32;
/// A connection's life beyond the longest profile it may ask for.
const CONNECTION_SLACK: Duration = Duration::from_secs(60);
/// Threads for the work that takes CPU.
const BLOCKING_THREADS: usize = 2;

/// What the endpoint served and refused since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Requests answered, whatever their status.
    pub requests: u64,
    /// Requests refused for a missing or wrong token (401).
    pub unauthorized: u64,
    /// Profile requests refused because one was running (409).
    pub profiles_refused: u64,
    /// Requests answered 503 because 32 were being served.
    pub connections_refused: u64,
    /// Connections closed while still sending their request head, to make
    /// room for a new one (the oldest of the peer holding the most).
    pub slow_heads_closed: u64,
    /// Connections closed for outliving their time (a stalled client).
    pub connections_timed_out: u64,
    /// Whether a CPU profile request is being served now.
    pub profile_in_progress: bool,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    unauthorized: AtomicU64,
    profiles_refused: AtomicU64,
    connections_refused: AtomicU64,
    slow_heads_closed: AtomicU64,
    connections_timed_out: AtomicU64,
}

/// What every request handler shares.
pub(crate) struct State {
    token: Option<Secret>,
    max_seconds: u64,
    /// The rate of a sampler a profile request starts when none runs.
    default_hz: u32,
    /// One profile at a time, as Go's endpoint does.
    profiling: AtomicBool,
    /// Permits of the requests being served.
    serving: Arc<Semaphore>,
    counters: Counters,
}

/// The running endpoint. Dropping it stops it the same way as
/// [`HttpServer::shutdown`].
pub struct HttpServer {
    address: SocketAddr,
    state: Arc<State>,
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
    started_in: StartedIn,
}

impl HttpServer {
    /// Binds `config.listen` and serves on a thread of its own. Fails,
    /// naming the key, when the address is not loopback and no token is
    /// set, or when it cannot be bound.
    pub fn start(config: &HttpConfig, default_hz: u32) -> Result<HttpServer> {
        crate::config::check_parameter(
            crate::config::keys::CPU_FREQUENCY,
            default_hz.into(),
            "HttpServer::start's default_hz",
        )?;
        config.validate()?;
        let addresses = access::listen_addresses(config)?;
        let listener =
            std::net::TcpListener::bind(&addresses[..]).map_err(|e| Error::Resource {
                what: format!(
                    "the HTTP endpoint's address {} ({})",
                    config.listen.as_deref().unwrap_or_default(),
                    crate::config::keys::HTTP_LISTEN.path
                ),
                source: e,
            })?;
        let address = listener.local_addr().map_err(|e| Error::Resource {
            what: "the HTTP endpoint's bound address".to_owned(),
            source: e,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Resource {
                what: "a non-blocking HTTP listener".to_owned(),
                source: e,
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("agentprof-http-work")
            .build()
            .map_err(|e| Error::Resource {
                what: "the HTTP endpoint's runtime".to_owned(),
                source: e,
            })?;
        let state = Arc::new(State {
            token: config.token.clone(),
            max_seconds: config.max_seconds,
            default_hz,
            profiling: AtomicBool::new(false),
            serving: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            counters: Counters::default(),
        });
        let stop = Arc::new(Notify::new());
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("agentprof-http".to_owned())
                .spawn(move || {
                    crate::profiler_cost::enter_profiler_thread();
                    let accepting = runtime.block_on(async {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        tokio::spawn(accept(listener, state));
                        stop.notified().await;
                        std::io::Result::Ok(())
                    });
                    if let Err(e) = accepting {
                        tracing::warn!(error = %e, "agentprof's HTTP endpoint could not accept connections");
                    }
                    // Requests in flight end here; work already on the
                    // blocking pool gets a moment to finish.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })
                .map_err(|e| Error::Resource {
                    what: "the HTTP endpoint's thread".to_owned(),
                    source: e,
                })?
        };
        Ok(HttpServer {
            address,
            state,
            stop,
            thread: Some(thread),
            started_in: StartedIn::this_process(),
        })
    }

    /// The address it listens on (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// What it served and refused so far.
    pub fn stats(&self) -> HttpStats {
        let c = &self.state.counters;
        HttpStats {
            requests: c.requests.load(Relaxed),
            unauthorized: c.unauthorized.load(Relaxed),
            profiles_refused: c.profiles_refused.load(Relaxed),
            connections_refused: c.connections_refused.load(Relaxed),
            slow_heads_closed: c.slow_heads_closed.load(Relaxed),
            connections_timed_out: c.connections_timed_out.load(Relaxed),
            profile_in_progress: self.state.profiling.load(Relaxed),
        }
    }

    /// Stops listening and ends open connections, within about a second.
    pub fn shutdown(mut self) -> HttpStats {
        self.stop();
        self.stats()
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // `notify_one` keeps the wake-up if the thread is not waiting yet.
        self.stop.notify_one();
        crate::fork::join(thread, self.started_in);
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("address", &self.address)
            .field("stats", &self.stats())
            .finish()
    }
}

async fn accept(listener: tokio::net::TcpListener, state: Arc<State>) {
    let pending = Arc::new(admission::PendingHeads::default());
    let lifetime = Duration::from_secs(state.max_seconds) + CONNECTION_SLACK;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors, or a connection reset before it was
                // taken: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (admitted, closed_another) = pending.admit(peer.ip());
        if closed_another {
            state.counters.slow_heads_closed.fetch_add(1, Relaxed);
        }
        let (state, pending) = (state.clone(), pending.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let id = admitted.id;
            let service = hyper::service::service_fn(|request| {
                let state = state.clone();
                // The head arrived: the connection leaves the head phase
                // (unless it was closed to make room meanwhile).
                let admitted = pending.leave(id);
                async move {
                    let reply = if admitted {
                        routes::respond(request, state).await
                    } else {
                        routes::unavailable()
                    };
                    Ok::<_, std::convert::Infallible>(reply)
                }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .max_headers(MAX_HEADERS)
                // One request per connection: a connection idle between
                // requests would be a head phase that proved nothing.
                .keep_alive(false);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let timed_out = tokio::select! {
                served = tokio::time::timeout(lifetime, connection) => match served {
                    Err(_) => true,
                    Ok(Err(e)) => e.is_timeout(),
                    Ok(Ok(())) => false,
                },
                () = admitted.close.notified() => false,
            };
            pending.leave(id);
            if timed_out {
                state.counters.connections_timed_out.fetch_add(1, Relaxed);
            }
        });
        // Let the new connection read what it was sent before the next
        // one is admitted.
        tokio::task::yield_now().await;
    }
}
