//! The static description of an instrumented function.
//!
//! `#[profiled]` emits one `static Callsite` per annotated item. The callsite
//! also anchors that function's aggregates (one entry per agent it ran
//! under), so finishing an invocation finds its row by pointer, without
//! hashing a name.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::attribution::{self, AgentEntry};

/// One instrumented function, async block or labelled future.
#[derive(Debug)]
pub struct Callsite {
    function: &'static str,
    agent: Option<&'static str>,
    file: &'static str,
    line: u32,
    registered: AtomicBool,
    entries: AtomicPtr<AgentEntry>,
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
            registered: AtomicBool::new(false),
            entries: AtomicPtr::new(std::ptr::null_mut()),
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
    ///
    /// Rows are never freed: there is at most one per (callsite, agent) pair,
    /// and both are `'static` names from the program text, so their number is
    /// bounded by the program, not by traffic.
    pub(crate) fn entry_for(&'static self, agent: Option<&'static str>) -> &'static AgentEntry {
        loop {
            let head = self.entries.load(Ordering::Acquire);
            let mut cursor = published(head);
            while let Some(entry) = cursor {
                if same_agent(entry.agent, agent) {
                    return entry;
                }
                cursor = entry.next;
            }
            let entry = Box::into_raw(Box::new(AgentEntry::new(self, agent, published(head))));
            match self
                .entries
                .compare_exchange(head, entry, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if !self.registered.swap(true, Ordering::AcqRel) {
                        attribution::register(self);
                    }
                    // SAFETY: just published; never freed.
                    return unsafe { &*entry };
                }
                Err(_) => {
                    // Another thread pushed first; ours was never shared.
                    // SAFETY: `entry` came from Box::into_raw above and no
                    // other reference to it exists.
                    drop(unsafe { Box::from_raw(entry) });
                }
            }
        }
    }

    /// Every agent row of this callsite.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &'static AgentEntry> {
        let mut cursor = published(self.entries.load(Ordering::Acquire));
        std::iter::from_fn(move || {
            let entry = cursor?;
            cursor = entry.next;
            Some(entry)
        })
    }
}

/// Turns the list head into a reference.
fn published(ptr: *mut AgentEntry) -> Option<&'static AgentEntry> {
    // SAFETY: the only non-null values ever stored in `entries` are leaked
    // boxes published with Release after full initialisation and never
    // freed; every load pairs with Acquire.
    unsafe { ptr.as_ref() }
}

fn same_agent(a: Option<&'static str>, b: Option<&'static str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => std::ptr::eq(a, b) || a == b,
        _ => false,
    }
}
