//! Extra invocation labels from `labels(key = expr, ...)`, bounded.
//!
//! Label values come from user data (session ids, tool names), so both the
//! length of a value and the number of distinct values per key are capped:
//! without that, one label fed with request ids would grow every store that
//! keys on labels without limit. What is cut is counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::{self, Display, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::thread::memory::untracked;

/// Value that replaces any value past the per-key limit of distinct values.
pub(crate) const OVERFLOW_VALUE: &str = "__overflow__";

static MAX_VALUE_LEN: AtomicUsize = AtomicUsize::new(128);
static MAX_VALUES_PER_KEY: AtomicUsize = AtomicUsize::new(1000);
static TRUNCATED: AtomicU64 = AtomicU64::new(0);
static OVERFLOWED: AtomicU64 = AtomicU64::new(0);

type Interned = HashMap<&'static str, HashSet<Arc<str>>>;
static VALUES: Mutex<Option<Interned>> = Mutex::new(None);

pub(crate) fn configure_labels(max_value_len: usize, max_values_per_key: usize) {
    MAX_VALUE_LEN.store(max_value_len, Relaxed);
    MAX_VALUES_PER_KEY.store(max_values_per_key, Relaxed);
}

/// (values truncated, values replaced by [`OVERFLOW_VALUE`]) so far.
pub(crate) fn label_counters() -> (u64, u64) {
    (TRUNCATED.load(Relaxed), OVERFLOWED.load(Relaxed))
}

pub(crate) fn reset_labels() {
    if let Ok(mut values) = VALUES.lock() {
        *values = None;
    }
    TRUNCATED.store(0, Relaxed);
    OVERFLOWED.store(0, Relaxed);
}

/// The labels of one invocation: `(key, value)` pairs, cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels(Arc<[(&'static str, Arc<str>)]>);

impl Labels {
    /// Formats each value once, truncating and interning it within bounds.
    pub fn new(pairs: &[(&'static str, &dyn Display)]) -> Self {
        untracked(|| Self::format(pairs))
    }

    fn format(pairs: &[(&'static str, &dyn Display)]) -> Self {
        let max_len = MAX_VALUE_LEN.load(Relaxed);
        let mut formatted = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let mut out = Bounded {
                text: String::new(),
                max_len,
                truncated: false,
            };
            // Formatting stops early once the bound is hit; that error is
            // ours, not the value's.
            let _ = write!(out, "{value}");
            if out.truncated {
                TRUNCATED.fetch_add(1, Relaxed);
            }
            formatted.push((*key, intern(key, out.text)));
        }
        Self(formatted.into())
    }

    /// The pairs, in the order the attribute lists them.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(k, v)| (*k, &**v))
    }

    /// The pairs as owned strings, for the public records.
    pub(crate) fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

fn intern(key: &'static str, value: String) -> Arc<str> {
    let limit = MAX_VALUES_PER_KEY.load(Relaxed);
    let Ok(mut guard) = VALUES.lock() else {
        return value.into();
    };
    let values = guard
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_default();
    if let Some(existing) = values.get(value.as_str()) {
        return existing.clone();
    }
    if values.len() >= limit {
        OVERFLOWED.fetch_add(1, Relaxed);
        return OVERFLOW_VALUE.into();
    }
    let value: Arc<str> = value.into();
    values.insert(value.clone());
    value
}

struct Bounded {
    text: String,
    max_len: usize,
    truncated: bool,
}

impl Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.max_len - self.text.len();
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&s[..cut]);
        self.truncated = true;
        Err(fmt::Error)
    }
}

const MAX_AGENT_NAMES: usize = 1024;
static AGENT_NAMES: Mutex<BTreeMap<String, &'static str>> = Mutex::new(BTreeMap::new());

/// A `'static` agent name for a run-time string, interned within a bound
/// (past it, [`OVERFLOW_VALUE`], counted).
pub(crate) fn agent_name(name: &str) -> &'static str {
    let mut names = AGENT_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = names.get(name) {
        return found;
    }
    if names.len() >= MAX_AGENT_NAMES {
        OVERFLOWED.fetch_add(1, Relaxed);
        return OVERFLOW_VALUE;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(name.to_owned(), leaked);
    leaked
}
