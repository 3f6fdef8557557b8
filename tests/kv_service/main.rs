//! A small key-value service written the way services are: a server and
//! its client over loopback, commands as trait objects, a generic framed
//! connection, `Drop` impls, functions that already carry
//! `#[tracing::instrument]`, an accept loop and a purge task that never
//! return. Every function is annotated. The report must name each
//! function apart (type and trait included) and show the loops that are
//! still running with the CPU they have spent.

mod client;
mod connection;
mod db;
mod protocol;
mod server;

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::OnceLock;

pub use common::{burn_cpu_ns, thread_cpu_ns};

#[global_allocator]
static ALLOC: agentprof::Allocator = agentprof::Allocator::system();

static DB: OnceLock<db::Db> = OnceLock::new();

/// Lets the test read the store's own figures.
pub fn publish_db(db: db::Db) {
    let _ = DB.set(db);
}

const CLIENTS: usize = 4;
const KEYS: usize = 40;

async fn client_session(addr: std::net::SocketAddr, id: usize) {
    let mut client = client::Client::connect(addr).await.unwrap();
    client.ping().await.unwrap();
    for i in 0..KEYS {
        let key = format!("session-{id}-{i}");
        let value = vec![(i % 251) as u8; 512];
        client.set(&key, value.clone()).await.unwrap();
        assert_eq!(client.get(&key).await.unwrap(), Some(value));
    }
}

#[test]
fn every_function_is_named_apart_and_running_loops_show_their_cpu() {
    common::setup();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(server::run(listener, stopped));
    runtime.block_on(async {
        let sessions: Vec<_> = (0..CLIENTS)
            .map(|id| tokio::spawn(client_session(addr, id)))
            .collect();
        for session in sessions {
            session.await.unwrap();
        }
    });
    common::wait_until("the handlers to see their clients leave", || {
        agentprof::report()
            .functions_named("::server::Handler::run")
            .map(|r| r.calls)
            .sum::<u64>()
            == CLIENTS as u64
    });
    let db = DB.get().expect("the server published its store");
    common::wait_until("the purge task to run 20 times", || {
        db.purge_figures().1 >= 20
    });

    let (purge_cpu_before, _) = db.purge_figures();
    let report = agentprof::report();
    let (purge_cpu_after, _) = db.purge_figures();

    // Every label names one place in the source.
    let mut places: HashMap<&str, (&str, u32)> = HashMap::new();
    for row in &report.functions {
        let place = places.entry(&row.function).or_insert((&row.file, row.line));
        assert_eq!(
            *place,
            (row.file.as_str(), row.line),
            "{} names two functions",
            row.function
        );
    }
    let module = module_path!();
    let labels: Vec<&str> = places.keys().copied().collect();
    for expected in [
        format!("{module}::server::Listener::run"),
        format!("{module}::server::Handler::run"),
        format!("{module}::server::run"),
        format!("{module}::server::command"),
        format!("<{module}::server::Handler as Drop>::drop"),
        format!("<{module}::server::Get as Command>::apply"),
        format!("<{module}::server::Set as Command>::apply"),
        format!("<{module}::server::Ping as Command>::apply"),
        format!("{module}::db::DbDropGuard::new"),
        format!("{module}::db::Db::get"),
        format!("{module}::db::Db::set"),
        format!("{module}::db::Db::purge_expired_keys"),
        format!("{module}::db::purge_expired_tasks"),
        format!("{module}::connection::Connection::read_frame"),
        format!("{module}::connection::Connection::write_frame"),
        format!("<{module}::protocol::LineCodec as Codec>::encode"),
        format!("<{module}::protocol::LineCodec as Codec>::decode"),
        format!("{module}::protocol::unhex"),
        format!("{module}::client::Client::connect"),
        format!("{module}::client::Client::get"),
        format!("{module}::client::Client::request"),
        format!("<{module}::client::Client as Drop>::drop"),
    ] {
        assert!(
            labels.contains(&expected.as_str()),
            "no row {expected:?} among {labels:?}"
        );
    }
    // The generic connection runs under both agents: one label, two rows.
    let read_frame = format!("{module}::connection::Connection::read_frame");
    let server_reads = report.function(Some("kv-server"), &read_frame).unwrap();
    let client_reads = report.function(Some("kv-client"), &read_frame).unwrap();
    // Each handler's last read saw its client leave.
    assert_eq!(
        server_reads.calls,
        (CLIENTS * (1 + 2 * KEYS) + CLIENTS) as u64
    );
    assert_eq!(client_reads.calls, (CLIENTS * (1 + 2 * KEYS)) as u64);

    // The accept loop runs: no finished call, one running invocation.
    let accept = report
        .function(
            Some("kv-server"),
            &format!("{module}::server::Listener::run"),
        )
        .unwrap();
    assert_eq!((accept.calls, accept.active), (0, 1));
    assert_eq!(accept.running.invocations, 1);
    assert!(accept.running.polls >= 1, "{:?}", accept.running);
    assert!(
        accept.running.alloc_bytes.unwrap() > 0,
        "{:?}",
        accept.running
    );
    assert!(accept.running.wall_ns > 0);

    // The purge task runs too, and has spent what its work measured.
    let purge = report
        .function(Some("kv-db"), &format!("{module}::db::purge_expired_tasks"))
        .unwrap();
    assert_eq!((purge.calls, purge.active), (0, 1));
    let running_cpu = purge.running.cpu_ns.expect("measured");
    assert!(
        running_cpu + 2_000_000 >= purge_cpu_before
            && running_cpu <= purge_cpu_after + purge_cpu_after / 4 + 5_000_000,
        "purge task: {running_cpu} ns running; its work measured {purge_cpu_before}..{purge_cpu_after}"
    );
    let agent = report.agent(Some("kv-db")).unwrap();
    assert!(agent.running.invocations >= 1);
    let table = report.to_string();
    let line = table
        .lines()
        .find(|l| l.contains("::db::purge_expired_tasks"))
        .unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((cells[2], cells[3]), ("0", "1"), "calls, active: {line}");
    assert!(
        cells[14].ends_with("ms") || cells[14].ends_with('s'),
        "{line}"
    );

    // Shut down: the loops end and become finished calls.
    stop.send(()).unwrap();
    runtime.block_on(server).unwrap();
    drop(runtime);
    let report = agentprof::report();
    let accept = report
        .function(
            Some("kv-server"),
            &format!("{module}::server::Listener::run"),
        )
        .unwrap();
    assert_eq!((accept.calls, accept.cancelled, accept.active), (1, 1, 0));
    let purge = report
        .function(Some("kv-db"), &format!("{module}::db::purge_expired_tasks"))
        .unwrap();
    assert_eq!((purge.calls, purge.active), (1, 0));
    assert!(purge.cpu_ns.unwrap() >= running_cpu);
    let serve = report
        .function(Some("kv-server"), &format!("{module}::server::run"))
        .unwrap();
    assert_eq!((serve.calls, serve.active), (1, 0));
    let guard_drop = format!("<{module}::db::DbDropGuard as Drop>::drop");
    assert_eq!(
        report
            .functions_named(&guard_drop)
            .map(|r| r.calls)
            .sum::<u64>(),
        1
    );
}
