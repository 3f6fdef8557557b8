//! The static description of an instrumented function.
//!
//! `#[profiled]` emits one `static Callsite` per annotated item. The callsite
//! also anchors that function's aggregate rows (one per agent it ran under),
//! so finishing an invocation finds its row by pointer, without hashing a
//! name. Callsites made at run time (`.profiled(label)`, invocations started
//! from run-time agent names) are interned within a bound.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock, RwLock};

use super::span::FinishFields;
use crate::aggregate::{Row, RowList};
use crate::thread::memory::untracked;

/// One instrumented function, async block or labelled future.
#[derive(Debug)]
pub struct Callsite {
    function: &'static str,
    /// The enclosing function's path as the compiler names it (with its
    /// impl's type, or `<Type as Trait>`), turned into the label once.
    path_of: Option<fn() -> &'static str>,
    resolved: OnceLock<&'static str>,
    agent: Option<&'static str>,
    file: &'static str,
    line: u32,
    rows: RowList,
    /// The span fields recorded at the end of each invocation, looked up by
    /// name once.
    pub(crate) finish_fields: OnceLock<FinishFields>,
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
            path_of: None,
            resolved: OnceLock::new(),
            agent,
            file,
            line,
            rows: RowList::new(),
            finish_fields: OnceLock::new(),
        }
    }

    /// Describes a function whose label is its path as the compiler names
    /// it (`path_of` returns the `type_name` of an item nested in it);
    /// `fallback` is `module::fn`, used where that path cannot be read.
    #[doc(hidden)]
    pub const fn with_path(
        path_of: fn() -> &'static str,
        fallback: &'static str,
        agent: Option<&'static str>,
        file: &'static str,
        line: u32,
    ) -> Self {
        let mut callsite = Self::new(fallback, agent, file, line);
        callsite.path_of = Some(path_of);
        callsite
    }

    /// The function label: `module::Type::method`,
    /// `<module::Type as Trait>::method` or `module::fn`, unless renamed with
    /// `name = ".."`. Computed once per callsite.
    pub fn function(&self) -> &'static str {
        match self.path_of {
            None => self.function,
            Some(path_of) => self.resolved.get_or_init(|| {
                untracked(|| match function_label(path_of()) {
                    Some(label) => Box::leak(label.into_boxed_str()),
                    None => self.function,
                })
            }),
        }
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
            .row_for(|| self.function(), agent, self.file, self.line)
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
                "agentprof::report::invocation",
                Some(agent),
                file!(),
                line!(),
            )))
        })
}

/// The suffix the macro's nested item adds to the enclosing fn's path.
const NESTED_ITEM: &str = "::__agentprof_name::here";

/// A fn's label from the `type_name` of an item nested in it: generic
/// arguments dropped (`Gen<_>::get` is `Gen::get`), a trait named by its
/// last segment (`<m::Handler as Drop>::drop`), closures left out.
fn function_label(nested: &str) -> Option<String> {
    let path = nested.strip_suffix(NESTED_ITEM)?;
    let path = path.replace("::{{closure}}", "");
    // Drop `<..>` that follows a name (generic arguments); keep the
    // brackets of a qualified path `<Type as Trait>`.
    let mut label = String::with_capacity(path.len());
    let mut skip_depth = 0usize;
    let mut previous = ' ';
    for c in path.chars() {
        match c {
            '<' if skip_depth > 0 => skip_depth += 1,
            '<' if previous.is_alphanumeric() || previous == '_' => skip_depth = 1,
            '>' if skip_depth > 0 => skip_depth -= 1,
            _ if skip_depth > 0 => {}
            _ => label.push(c),
        }
        previous = c;
    }
    // `<Type as path::to::Trait>::f` names the trait by its last segment.
    if let Some(rest) = label.strip_prefix('<') {
        if let Some((qualified, tail)) = rest.split_once(">::") {
            if let Some((ty, tr)) = qualified.split_once(" as ") {
                let tr = tr.rsplit("::").next().unwrap_or(tr);
                return Some(format!("<{ty} as {tr}>::{tail}"));
            }
        }
    }
    Some(label)
}

#[cfg(test)]
mod tests {
    use super::function_label;

    #[test]
    fn compiler_paths_become_labels() {
        let cases = [
            ("m::server::Handler::run", "m::server::Handler::run"),
            (
                "<m::server::Handler as core::ops::drop::Drop>::drop",
                "<m::server::Handler as Drop>::drop",
            ),
            ("m::server::Gen<_>::get", "m::server::Gen::get"),
            (
                "<m::server::Gen<_> as m::server::Tool>::call",
                "<m::server::Gen as Tool>::call",
            ),
            (
                "<m::Map<std::collections::HashMap<K, V>> as m::Store<K>>::put",
                "<m::Map as Store>::put",
            ),
            ("m::server::run", "m::server::run"),
            ("m::outer::inner", "m::outer::inner"),
            ("m::closure::{{closure}}", "m::closure"),
        ];
        for (path, label) in cases {
            let nested = format!("{path}::__agentprof_name::here");
            assert_eq!(function_label(&nested).as_deref(), Some(label), "{path}");
        }
        assert_eq!(function_label("unexpected"), None);
    }
}
