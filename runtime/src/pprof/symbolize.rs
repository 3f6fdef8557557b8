//! Symbolization of return addresses, cached for the life of the process
//! (code addresses do not change), with names made readable for pprof.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::thread::memory::untracked;

/// One symbolized frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SymbolFrame {
    pub(crate) name: String,
    pub(crate) file: String,
    pub(crate) line: u32,
}

/// Addresses the symbol cache holds at most (a few MiB); when full it
/// starts over, so a program that samples ever new addresses (JIT code,
/// libraries loaded and unloaded) cannot grow it without end.
const SYMBOL_CACHE_ADDRESSES: usize = 65_536;

/// Symbols of return addresses, innermost inlined frame first; cached
/// (code addresses do not change), within [`SYMBOL_CACHE_ADDRESSES`].
pub(crate) fn symbolize(address: usize) -> Vec<SymbolFrame> {
    // The symbolizer's allocations are the profiler's own.
    untracked(|| symbolize_uncached_or_cached(address))
}

fn symbolize_uncached_or_cached(address: usize) -> Vec<SymbolFrame> {
    static CACHE: OnceLock<Mutex<HashMap<usize, Vec<SymbolFrame>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&address)
    {
        return found.clone();
    }
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
    if frames.is_empty() {
        frames.push(SymbolFrame {
            name: format!("{address:#x}"),
            file: String::new(),
            line: 0,
        });
    }
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= SYMBOL_CACHE_ADDRESSES {
        cache.clear();
    }
    cache.insert(address, frames.clone());
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
