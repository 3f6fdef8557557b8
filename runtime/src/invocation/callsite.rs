//! The static description of an instrumented function.
//!
//! `#[profiled]` emits one `static Callsite` per annotated item. The callsite
//! also anchors that function's aggregate rows (one per agent it ran under),
//! so finishing an invocation finds its row by pointer, without hashing a
//! name. Callsites made at run time (`.profiled(label)`, invocations started
//! from run-time agent names) are interned within a bound.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};

use crate::aggregate::{Row, RowList};

/// One instrumented function, async block or labelled future.
#[derive(Debug)]
pub struct Callsite {
    function: &'static str,
    agent: Option<&'static str>,
    file: &'static str,
    line: u32,
    rows: RowList,
}

impl Callsite {
    /// Describes a function; `agent: None` inherits the caller's agent.
    pub const fn new(
        function: &'static str,
        agent: Option<&'static str>,
        file: &'static str,
        line: u32,
    ) -> Self {
        Self {
            function,
            agent,
            file,
            line,
            rows: RowList::new(),
        }
    }

    /// The function label: `module::path::fn` unless renamed with `name = ".."`.
    pub fn function(&self) -> &'static str {
        self.function
    }

    /// The agent named on the attribute, if any.
    pub fn agent(&self) -> Option<&'static str> {
        self.agent
    }

    /// Source file of the annotated item.
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// Source line of the annotated item.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The aggregate row of this callsite under `agent`, created on first use.
    #[inline]
    pub(crate) fn row_for(&self, agent: Option<&'static str>) -> &'static Row {
        self.rows
            .row_for(self.function, agent, self.file, self.line)
    }

    /// Every agent row of this callsite.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn rows(&self) -> impl Iterator<Item = &'static Row> {
        self.rows.iter()
    }
}

const MAX_DYNAMIC_CALLSITES: usize = 1024;
static DYNAMIC: RwLock<Option<HashMap<&'static str, &'static Callsite>>> = RwLock::new(None);
static DYNAMIC_OVERFLOW: AtomicU64 = AtomicU64::new(0);
static OVERFLOW_CALLSITE: Callsite =
    Callsite::new("agentprof::__overflow__", None, file!(), line!());

/// The callsite of futures profiled as `function` (`.profiled(label)`);
/// past [`MAX_DYNAMIC_CALLSITES`] labels, one overflow callsite, counted.
pub(crate) fn dynamic_callsite(function: &'static str) -> &'static Callsite {
    if let Some(found) = DYNAMIC
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(function).copied())
    {
        return found;
    }
    let mut map = DYNAMIC.write().unwrap_or_else(|e| e.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    if let Some(found) = map.get(function) {
        return found;
    }
    if map.len() >= MAX_DYNAMIC_CALLSITES {
        DYNAMIC_OVERFLOW.fetch_add(1, Relaxed);
        return &OVERFLOW_CALLSITE;
    }
    let callsite: &'static Callsite =
        Box::leak(Box::new(Callsite::new(function, None, "<future>", 0)));
    map.insert(function, callsite);
    callsite
}

/// Labels that found no room among the dynamic callsites.
pub(crate) fn dynamic_overflowed() -> u64 {
    DYNAMIC_OVERFLOW.load(Relaxed)
}

pub(crate) fn reset_dynamic_overflowed() {
    DYNAMIC_OVERFLOW.store(0, Relaxed);
}

/// The callsite of invocations started through `ResourceAttribution` for
/// `agent`; one per interned agent name, so bounded like them.
pub(crate) fn explicit_callsite(agent: &'static str) -> &'static Callsite {
    static EXPLICIT: Mutex<BTreeMap<&'static str, &'static Callsite>> = Mutex::new(BTreeMap::new());
    EXPLICIT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(agent)
        .or_insert_with(|| {
            Box::leak(Box::new(Callsite::new(
                "agentprof::invocation",
                Some(agent),
                file!(),
                line!(),
            )))
        })
}
