//! Symbolization of return addresses, cached (code addresses do not change
//! while the same objects are loaded), with names made readable for pprof.
//!
//! Two sources: the loaded objects' symbol tables (the default, `symbols`:
//! function names, about 1 MiB), or their DWARF debug information through
//! `backtrace` (`cpu.symbolize = "debuginfo"`: inlined frames, files and
//! lines, at tens of MiB and hundreds of milliseconds for a large binary's
//! first profile).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

use super::symbols;
use crate::config::SymbolizeConfig;
use crate::thread::memory::untracked;

/// One symbolized frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SymbolFrame {
    pub(crate) name: String,
    pub(crate) file: String,
    pub(crate) line: u32,
}

/// Addresses the symbol cache holds at most; when full it starts over, so
/// a program that samples ever new addresses (JIT code, libraries loaded
/// and unloaded) cannot grow it without end.
const SYMBOL_CACHE_ADDRESSES: usize = 65_536;

static CACHE: Mutex<Option<HashMap<usize, Vec<SymbolFrame>>>> = Mutex::new(None);
static DEBUG_INFO: AtomicBool = AtomicBool::new(false);

/// Chooses where names come from (`cpu.symbolize`).
pub(crate) fn set_source(source: SymbolizeConfig) {
    let debug_info = source == SymbolizeConfig::DebugInfo;
    if DEBUG_INFO.swap(debug_info, Relaxed) != debug_info {
        clear_cache();
    }
}

/// Whether names come with inlined frames, files and lines.
pub(crate) fn has_debug_info() -> bool {
    DEBUG_INFO.load(Relaxed)
}

fn clear_cache() {
    *CACHE.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Before a profile is symbolized: forgets names of objects that were
/// unloaded (or loaded) since.
pub(crate) fn refresh() {
    if !has_debug_info() && untracked(symbols::refresh) {
        clear_cache();
    }
}

/// Symbols of return addresses, innermost inlined frame first; cached
/// within [`SYMBOL_CACHE_ADDRESSES`].
pub(crate) fn symbolize(address: usize) -> Vec<SymbolFrame> {
    // The symbolizer's allocations are the profiler's own.
    untracked(|| symbolize_uncached_or_cached(address))
}

fn symbolize_uncached_or_cached(address: usize) -> Vec<SymbolFrame> {
    if let Some(found) = CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|cache| cache.get(&address))
    {
        return found.clone();
    }
    let mut frames = if has_debug_info() {
        from_debug_info(address)
    } else {
        from_symbol_table(address)
    };
    if frames.is_empty() {
        frames.push(SymbolFrame {
            name: format!("{address:#x}"),
            file: String::new(),
            line: 0,
        });
    }
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if cache.len() >= SYMBOL_CACHE_ADDRESSES {
        cache.clear();
    }
    cache.insert(address, frames.clone());
    frames
}

fn from_symbol_table(address: usize) -> Vec<SymbolFrame> {
    // A return address points after the call; the call is one byte back.
    symbols::lookup(address.saturating_sub(1) as u64, |raw| {
        let raw = String::from_utf8_lossy(raw);
        match rustc_demangle::try_demangle(&raw) {
            Ok(demangled) => readable_name(&format!("{demangled:#}")),
            Err(_) => raw.into_owned(),
        }
    })
    .map(|name| {
        vec![SymbolFrame {
            name,
            file: String::new(),
            line: 0,
        }]
    })
    .unwrap_or_default()
}

fn from_debug_info(address: usize) -> Vec<SymbolFrame> {
    let mut frames = Vec::new();
    // A return address points after the call; the call is one byte back.
    backtrace::resolve(
        address.saturating_sub(1) as *mut std::ffi::c_void,
        |symbol| {
            let name = symbol
                .name()
                .map(|n| readable_name(&format!("{n:#}")))
                .unwrap_or_else(|| format!("{address:#x}"));
            frames.push(SymbolFrame {
                name,
                file: symbol
                    .filename()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                line: symbol.lineno().unwrap_or(0),
            });
        },
    );
    frames
}

/// Rewrites a qualified Rust path so that readers which drop everything in
/// angle brackets (as `go tool pprof` does for C++ templates) still show
/// the function: `<u8 as alloc::vec::SpecFromElem>::from_elem` becomes
/// `alloc::vec::SpecFromElem::from_elem[u8]`, `<Vec<T>>::push` becomes
/// `Vec<T>::push`.
pub(crate) fn readable_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix('<') else {
        return name.to_owned();
    };
    // Find the `>` closing the leading `<`.
    let mut depth = 1;
    let mut close = None;
    for (i, c) in rest.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return name.to_owned();
    };
    let (qualified, tail) = (&rest[..close], &rest[close + 1..]);
    // ` as ` at depth 0 of the qualified part separates type and trait.
    let mut depth = 0;
    let bytes = qualified.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b' ' if depth == 0 && qualified[i..].starts_with(" as ") => {
                let (ty, tr) = (&qualified[..i], &qualified[i + 4..]);
                return format!("{tr}{tail}[{ty}]");
            }
            _ => {}
        }
    }
    format!("{qualified}{tail}")
}

#[cfg(test)]
mod tests {
    use super::readable_name;

    #[test]
    fn qualified_paths_survive_angle_bracket_stripping() {
        assert_eq!(
            readable_name("<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem"),
            "alloc::vec::spec_from_elem::SpecFromElem::from_elem[u8]"
        );
        assert_eq!(
            readable_name("<alloc::vec::Vec<T, A> as core::ops::drop::Drop>::drop"),
            "core::ops::drop::Drop::drop[alloc::vec::Vec<T, A>]"
        );
        assert_eq!(
            readable_name("<alloc::vec::Vec<u8>>::push"),
            "alloc::vec::Vec<u8>::push"
        );
        assert_eq!(readable_name("my_crate::plan"), "my_crate::plan");
        assert_eq!(readable_name("<broken"), "<broken");
    }
}
