//! The shared key-value store, with a background task that purges expired
//! keys for as long as the store exists.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentprof::profiled;
use tokio::sync::Notify;

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    expirations: BTreeMap<(Instant, u64), String>,
    next_id: u64,
    shutdown: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    background: Notify,
    /// Thread CPU the purge work measured itself, ns.
    purge_cpu_ns: AtomicU64,
    purges: AtomicU64,
}

/// A handle to the store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    shared: Arc<Shared>,
}

/// Owns the store: dropping it stops the purge task.
pub struct DbDropGuard {
    db: Db,
}

impl DbDropGuard {
    #[profiled(agent = "kv-db")]
    pub fn new() -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(purge_expired_tasks(shared.clone()));
        Self { db: Db { shared } }
    }

    #[profiled]
    pub fn db(&self) -> Db {
        self.db.clone()
    }
}

impl Drop for DbDropGuard {
    #[profiled]
    fn drop(&mut self) {
        self.db.shutdown_purge_task();
    }
}

impl Db {
    #[profiled]
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let state = self.shared.state.lock().unwrap();
        state.entries.get(key).map(|e| e.value.clone())
    }

    #[profiled]
    pub fn set(&self, key: String, value: Vec<u8>, ttl: Option<Duration>) {
        let mut state = self.shared.state.lock().unwrap();
        let id = state.next_id;
        state.next_id += 1;
        let expires_at = ttl.map(|ttl| Instant::now() + ttl);
        if let Some(when) = expires_at {
            state.expirations.insert((when, id), key.clone());
        }
        state.entries.insert(key, Entry { value, expires_at });
    }

    #[profiled]
    pub fn del(&self, key: &str) -> bool {
        self.shared
            .state
            .lock()
            .unwrap()
            .entries
            .remove(key)
            .is_some()
    }

    /// Removes what expired, and checks every entry's integrity (the CPU a
    /// real store spends on its housekeeping).
    #[profiled]
    fn purge_expired_keys(&self) -> Option<Instant> {
        let start = crate::thread_cpu_ns();
        let mut state = self.shared.state.lock().unwrap();
        let now = Instant::now();
        while let Some((&(when, id), _)) = state.expirations.iter().next() {
            if when > now {
                break;
            }
            let key = state.expirations.remove(&(when, id)).unwrap();
            if state
                .entries
                .get(&key)
                .is_some_and(|e| e.expires_at == Some(when))
            {
                state.entries.remove(&key);
            }
        }
        let mut checksum = 0u64;
        for entry in state.entries.values() {
            for &b in &entry.value {
                checksum = checksum.rotate_left(5) ^ b as u64;
            }
        }
        std::hint::black_box(checksum);
        crate::burn_cpu_ns(300_000);
        let next = state.expirations.keys().next().map(|&(when, _)| when);
        drop(state);
        self.shared
            .purge_cpu_ns
            .fetch_add(crate::thread_cpu_ns() - start, Ordering::SeqCst);
        self.shared.purges.fetch_add(1, Ordering::SeqCst);
        next
    }

    #[profiled]
    fn is_shutdown(&self) -> bool {
        self.shared.state.lock().unwrap().shutdown
    }

    #[profiled]
    fn shutdown_purge_task(&self) {
        self.shared.state.lock().unwrap().shutdown = true;
        self.shared.background.notify_one();
    }

    /// (CPU the purge work measured, purges so far).
    pub fn purge_figures(&self) -> (u64, u64) {
        (
            self.shared.purge_cpu_ns.load(Ordering::SeqCst),
            self.shared.purges.load(Ordering::SeqCst),
        )
    }
}

/// Runs until the store is dropped: wakes every 5 ms or when notified.
#[profiled(agent = "kv-db")]
async fn purge_expired_tasks(shared: Arc<Shared>) {
    let db = Db { shared };
    while !db.is_shutdown() {
        db.purge_expired_keys();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            _ = db.shared.background.notified() => {}
        }
    }
}
