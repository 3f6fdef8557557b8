//! A small Redis-like key-value server and its clients over loopback, every
//! function of both annotated, against the same code with
//! `#[tracing::instrument(skip_all)]` on every function and against no
//! annotation at all.
//!
//! ```text
//! cargo bench --bench kv_server
//! ```
//!
//! One scenario: a server on 127.0.0.1 (a listener task, a task per
//! connection reading frames, parsing commands, applying them to a shared
//! store behind a trait and writing replies) and 8 clients that each send
//! 500 `SET` and 500 `GET` requests, one at a time, on a 2-worker tokio
//! runtime. Its wall time is measured for each variant, with no subscriber
//! and with a `tracing_subscriber::Registry` set on every thread, and the run
//! ends with the ratios the README reports. The target's ratios are also
//! measured in interleaved rounds (each round runs the variants one after
//! the other, in turn first), so that what the machine does meanwhile
//! weighs on both sides of each ratio: their median and range follow.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::Criterion;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

mod common;

const GROUP: &str = "kv_server";
const CLIENTS: usize = 8;
const REQUESTS_PER_CLIENT: usize = 500;

macro_rules! kv_service {
    ($name:ident $(, #[$attr:meta])?) => {
        mod $name {
            use super::*;

            /// What a client asks for.
            #[derive(Debug, PartialEq)]
            pub enum Command {
                Set { key: String, value: String },
                Get { key: String },
            }

            impl Command {
                $(#[$attr])?
                pub fn parse(line: &str) -> Result<Command, String> {
                    let mut words = line.split_ascii_whitespace();
                    match (words.next(), words.next(), words.next()) {
                        (Some("SET"), Some(key), Some(value)) => Ok(Command::Set {
                            key: key.to_owned(),
                            value: value.to_owned(),
                        }),
                        (Some("GET"), Some(key), None) => Ok(Command::Get {
                            key: key.to_owned(),
                        }),
                        _ => Err(format!("cannot parse {line:?}")),
                    }
                }
            }

            /// Where values live; the server is generic over it.
            pub trait Store: Send + Sync + 'static {
                fn set(&self, key: String, value: String);
                fn get(&self, key: &str) -> Option<String>;
            }

            #[derive(Default)]
            pub struct Db {
                entries: Mutex<HashMap<String, String>>,
            }

            impl Store for Db {
                $(#[$attr])?
                fn set(&self, key: String, value: String) {
                    self.entries.lock().unwrap().insert(key, value);
                }

                $(#[$attr])?
                fn get(&self, key: &str) -> Option<String> {
                    self.entries.lock().unwrap().get(key).cloned()
                }
            }

            /// A frame-at-a-time connection: one line in, one line out.
            pub struct Connection {
                reader: BufReader<TcpStream>,
                line: String,
            }

            impl Connection {
                pub fn new(stream: TcpStream) -> Self {
                    Self {
                        reader: BufReader::new(stream),
                        line: String::with_capacity(64),
                    }
                }

                $(#[$attr])?
                pub async fn read_frame(&mut self) -> std::io::Result<Option<String>> {
                    self.line.clear();
                    if self.reader.read_line(&mut self.line).await? == 0 {
                        return Ok(None);
                    }
                    Ok(Some(self.line.trim_end().to_owned()))
                }

                $(#[$attr])?
                pub async fn write_frame(&mut self, frame: &str) -> std::io::Result<()> {
                    let stream = self.reader.get_mut();
                    stream.write_all(frame.as_bytes()).await?;
                    stream.write_all(b"\n").await
                }
            }

            $(#[$attr])?
            fn apply<S: Store>(store: &S, command: Command) -> String {
                match command {
                    Command::Set { key, value } => {
                        store.set(key, value);
                        "OK".to_owned()
                    }
                    Command::Get { key } => match store.get(&key) {
                        Some(value) => format!("VALUE {value}"),
                        None => "NIL".to_owned(),
                    },
                }
            }

            $(#[$attr])?
            async fn handle<S: Store>(store: Arc<S>, stream: TcpStream) -> std::io::Result<()> {
                let mut connection = Connection::new(stream);
                while let Some(frame) = connection.read_frame().await? {
                    let reply = match Command::parse(&frame) {
                        Ok(command) => apply(&*store, command),
                        Err(e) => format!("ERR {e}"),
                    };
                    connection.write_frame(&reply).await?;
                }
                Ok(())
            }

            /// Stops accepting when dropped.
            pub struct Server {
                pub address: std::net::SocketAddr,
                accept: tokio::task::JoinHandle<()>,
            }

            impl Drop for Server {
                fn drop(&mut self) {
                    self.accept.abort();
                }
            }

            $(#[$attr])?
            pub async fn serve<S: Store>(store: Arc<S>) -> std::io::Result<Server> {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let address = listener.local_addr()?;
                let accept = tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(handle(store.clone(), stream));
                    }
                });
                Ok(Server { address, accept })
            }

            $(#[$attr])?
            async fn request(connection: &mut Connection, frame: &str) -> std::io::Result<String> {
                connection.write_frame(frame).await?;
                connection
                    .read_frame()
                    .await?
                    .ok_or_else(|| std::io::Error::other("the server closed the connection"))
            }

            $(#[$attr])?
            pub async fn client(address: std::net::SocketAddr, id: usize) -> std::io::Result<usize> {
                let stream = TcpStream::connect(address).await?;
                stream.set_nodelay(true)?;
                let mut connection = Connection::new(stream);
                let mut found = 0;
                for n in 0..REQUESTS_PER_CLIENT {
                    let key = format!("c{id}-k{n}");
                    let ok = request(&mut connection, &format!("SET {key} v{n}")).await?;
                    assert_eq!(ok, "OK");
                    let value = request(&mut connection, &format!("GET {key}")).await?;
                    found += usize::from(value == format!("VALUE v{n}"));
                }
                Ok(found)
            }

            /// One scenario: a server, 8 clients, every request answered.
            pub async fn scenario() -> Duration {
                let start = Instant::now();
                let server = serve(Arc::new(Db::default())).await.expect("bind");
                let clients: Vec<_> = (0..CLIENTS)
                    .map(|id| tokio::spawn(client(server.address, id)))
                    .collect();
                for c in clients {
                    let found = c.await.expect("client task").expect("client io");
                    assert_eq!(found, REQUESTS_PER_CLIENT);
                }
                drop(server);
                start.elapsed()
            }
        }
    };
}

kv_service!(plain);
kv_service!(profiled, #[agentprof::profiled(agent = "kv")]);
kv_service!(traced, #[tracing::instrument(skip_all)]);

/// A 2-worker runtime; with `dispatch`, every worker (and the thread that
/// blocks on it) has that subscriber as its default.
fn runtime(dispatch: Option<tracing::Dispatch>) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    if let Some(dispatch) = dispatch {
        builder.on_thread_start(move || {
            // For the worker's whole life: the guard is never dropped.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        });
    }
    builder.build().expect("a tokio runtime")
}

/// Keeps `per_function` exemplars per function (0: none) from now on.
fn exemplars(per_function: usize) {
    let mut config = agentprof::Config::default();
    config.telemetry.profiling.enabled = true;
    config
        .telemetry
        .profiling
        .attribution
        .exemplars_per_function = per_function;
    agentprof::init(&config).expect("a valid configuration");
}

/// Interleaved rounds of the variants the target compares.
const PAIRED_ROUNDS: usize = 15;

/// Per-round ratios, in the order measured.
struct Paired {
    profiled_over_instrument: Vec<f64>,
    exemplars_off_over_on: Vec<f64>,
}

fn paired_rounds(with_registry: &tokio::runtime::Runtime) -> Paired {
    let default_exemplars = agentprof::config::AttributionConfig::default().exemplars_per_function;
    let mut paired = Paired {
        profiled_over_instrument: Vec::new(),
        exemplars_off_over_on: Vec::new(),
    };
    for round in 0..PAIRED_ROUNDS {
        let mut times = [Duration::ZERO; 3];
        for step in 0..3 {
            let variant = (round + step) % 3;
            times[variant] = match variant {
                0 => with_registry.block_on(traced::scenario()),
                1 => with_registry.block_on(profiled::scenario()),
                _ => {
                    exemplars(0);
                    let time = with_registry.block_on(profiled::scenario());
                    exemplars(default_exemplars);
                    time
                }
            };
        }
        let [instrument, profiled_on, profiled_off] = times.map(|t| t.as_secs_f64());
        paired
            .profiled_over_instrument
            .push(profiled_on / instrument);
        paired
            .exemplars_off_over_on
            .push(profiled_off / profiled_on);
    }
    paired
}

/// Median, lowest and highest.
fn spread(ratios: &[f64]) -> (f64, f64, f64) {
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
    )
}

fn benches(c: &mut Criterion) -> Paired {
    let registry = tracing::Dispatch::new(tracing_subscriber::registry());
    let bare = runtime(None);
    let with_registry = runtime(Some(registry.clone()));
    let _main_default = tracing::dispatcher::set_default(&registry);
    let mut g = c.benchmark_group(GROUP);
    g.sample_size(10);
    macro_rules! variant {
        ($name:literal, $runtime:expr, $module:ident) => {
            g.bench_function($name, |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| $runtime.block_on($module::scenario()))
                        .sum()
                })
            });
        };
    }
    variant!("plain", bare, plain);
    variant!("profiled", bare, profiled);
    variant!("plain_registry", with_registry, plain);
    variant!("instrument_registry", with_registry, traced);
    variant!("profiled_registry", with_registry, profiled);
    // What keeping the slowest calls' callee trees costs here.
    exemplars(0);
    variant!("profiled_registry_no_exemplars", with_registry, profiled);
    exemplars(agentprof::config::AttributionConfig::default().exemplars_per_function);
    g.finish();
    let paired = paired_rounds(&with_registry);
    black_box(agentprof::report());
    paired
}

fn summary(paired: &Paired) {
    let m = |name: &str| common::mean_ns(GROUP, name);
    let plain = m("plain");
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\nsummary (means of this run; {CLIENTS} clients x {REQUESTS_PER_CLIENT} SET+GET)");
    println!(
        "  plain, no subscriber                      {:8.2} ms",
        plain / 1e6
    );
    println!(
        "  #[profiled] / plain, no subscriber        {:8.3}x",
        m("profiled") / plain
    );
    println!(
        "  #[instrument] / plain, Registry           {:8.3}x",
        m("instrument_registry") / m("plain_registry")
    );
    println!(
        "  #[profiled] / plain, Registry             {:8.3}x",
        m("profiled_registry") / m("plain_registry")
    );
    println!(
        "  same, exemplars off / exemplars on        {:8.3}x",
        m("profiled_registry_no_exemplars") / m("profiled_registry")
    );
    let ratio = m("profiled_registry") / m("instrument_registry");
    println!(
        "  #[profiled] / #[instrument], Registry     {ratio:8.3}x  target <= 1.0: {}",
        met(ratio <= 1.0)
    );
    println!("  {PAIRED_ROUNDS} interleaved rounds, median (lowest-highest):");
    let (median, low, high) = spread(&paired.profiled_over_instrument);
    println!(
        "  #[profiled] / #[instrument], Registry     {median:8.3}x  ({low:.3}-{high:.3})  target <= 1.0: {}",
        met(median <= 1.0)
    );
    let (median, low, high) = spread(&paired.exemplars_off_over_on);
    println!("  exemplars off / on, Registry              {median:8.3}x  ({low:.3}-{high:.3})");
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    let paired = benches(&mut c);
    c.final_summary();
    summary(&paired);
}
