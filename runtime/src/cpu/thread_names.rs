//! Names of sampled threads, looked up by the drainer while the thread is
//! most likely still alive (the signal handler only knows the thread id).
//!
//! A profile labels samples with the thread's *name*: tokio's workers
//! share one, so the label stays bounded however many threads come and go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Thread ids remembered at most; the table starts over when full (a
/// reused id then gets its current name).
const MAX_THREADS: usize = 4096;

static NAMES: Mutex<Option<HashMap<u64, Arc<str>>>> = Mutex::new(None);

/// Learns the names of `tids` not seen before.
pub(crate) fn remember(tids: impl Iterator<Item = u64>) {
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashMap::new);
    for tid in tids {
        if tid == 0 || names.contains_key(&tid) {
            continue;
        }
        if names.len() >= MAX_THREADS {
            names.clear();
        }
        names.insert(tid, read_name(tid));
    }
}

/// The name of thread `tid` as last seen (`"?"` if never seen).
pub(crate) fn name_of(tid: u64) -> Arc<str> {
    let names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(name) = names.as_ref().and_then(|n| n.get(&tid)) {
        return name.clone();
    }
    drop(names);
    read_name(tid)
}

#[cfg(target_os = "linux")]
fn read_name(tid: u64) -> Arc<str> {
    match std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")) {
        Ok(comm) => Arc::from(comm.trim_end_matches('\n')),
        // The thread exited before anyone asked.
        Err(_) => Arc::from("?"),
    }
}

#[cfg(not(target_os = "linux"))]
fn read_name(_tid: u64) -> Arc<str> {
    Arc::from("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_thread_is_found_by_its_id() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("named-worker".into())
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                tx.send(unsafe { libc::gettid() } as u64).unwrap();
                done_rx.recv().ok();
            })
            .unwrap();
        let tid = rx.recv().unwrap();
        remember([tid].into_iter());
        done_tx.send(()).unwrap();
        thread.join().unwrap();
        assert_eq!(&*name_of(tid), "named-worker");
    }
}
