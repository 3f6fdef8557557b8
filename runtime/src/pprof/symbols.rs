//! Function names from the symbol tables of the loaded objects: the
//! default symbolizer.
//!
//! Each object's file is mapped read-only and its ELF symbol table
//! (`.symtab`, else `.dynsym`) reduced to a sorted list of functions, 24
//! bytes each, whose names stay in the mapping until an address that a
//! sample hit needs one. Building it reads the symbol table once (a few
//! milliseconds; pages the kernel may drop again); nothing of the file's
//! debug information is parsed onto the heap. Parsing DWARF for inlined
//! frames and lines (`cpu.symbolize = "debuginfo"`) costs tens of MiB and
//! hundreds of milliseconds on a large binary; this costs about 1 MiB.
//!
//! The index is rebuilt when the set of loaded objects changes (`dlopen`,
//! `dlclose`), checked once per profile.

use std::ops::Range;
use std::sync::Mutex;

use object::{Object, ObjectSymbol, SymbolKind};

use crate::unwind::{loaded_objects, LoadedObject};

/// One function: where it is loaded and where its name is in the file.
#[derive(Clone, Copy, Debug)]
struct Function {
    start: u64,
    size: u64,
    name_at: u32,
    name_len: u32,
}

/// A file mapped read-only for as long as its index lives.
struct Mapping {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and immutable for its life; the pointer
// is only read through `bytes`.
unsafe impl Send for Mapping {}

impl Mapping {
    fn open(path: &str) -> Option<Mapping> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).ok()?;
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh private read-only mapping of a file we opened; the
        // kernel keeps the file's pages mapped after the descriptor closes.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then(|| Mapping {
            ptr: ptr.cast(),
            len,
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is mapped readable until `drop`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `open` made, once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// One object's functions, by start address.
struct ObjectSymbols {
    text: Range<u64>,
    functions: Vec<Function>,
    file: Mapping,
}

impl ObjectSymbols {
    fn read(object: &LoadedObject) -> Option<ObjectSymbols> {
        let file = Mapping::open(&object.path)?;
        let data = file.bytes();
        let parsed = object::File::parse(data).ok()?;
        let function = |symbol: object::Symbol<'_, '_>| {
            if symbol.kind() != SymbolKind::Text || !symbol.is_definition() {
                return None;
            }
            let name = symbol.name_bytes().ok()?;
            let name_at = (name.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
            if name.is_empty() || name_at >= data.len() {
                return None;
            }
            Some(Function {
                start: object.base.wrapping_add(symbol.address()),
                size: symbol.size(),
                name_at: u32::try_from(name_at).ok()?,
                name_len: u32::try_from(name.len()).ok()?,
            })
        };
        let mut functions: Vec<Function> = parsed.symbols().filter_map(function).collect();
        if functions.is_empty() {
            functions = parsed.dynamic_symbols().filter_map(function).collect();
        }
        functions.sort_by_key(|f| (f.start, std::cmp::Reverse(f.size)));
        functions.dedup_by_key(|f| f.start);
        functions.shrink_to_fit();
        Some(ObjectSymbols {
            text: object.text.clone(),
            functions,
            file,
        })
    }

    fn name_of(&self, address: u64) -> Option<&[u8]> {
        let after = self.functions.partition_point(|f| f.start <= address);
        let f = self.functions.get(after.checked_sub(1)?)?;
        // A sized symbol must contain the address; an unsized one (hand
        // written assembly) reaches to the next.
        if f.size != 0 && address >= f.start.saturating_add(f.size) {
            return None;
        }
        let at = f.name_at as usize;
        self.file.bytes().get(at..at + f.name_len as usize)
    }
}

struct Index {
    /// (path, load bias) of each object indexed, to notice a change.
    loaded: Vec<(String, u64)>,
    objects: Vec<ObjectSymbols>,
}

static INDEX: Mutex<Option<Index>> = Mutex::new(None);

/// Bytes the index holds on the heap (the mapped files aside).
pub(crate) fn index_bytes() -> usize {
    let index = INDEX.lock().unwrap_or_else(|e| e.into_inner());
    index.as_ref().map_or(0, |i| {
        i.objects
            .iter()
            .map(|o| o.functions.capacity() * std::mem::size_of::<Function>())
            .sum()
    })
}

/// Rebuilds the index if objects were loaded or unloaded since it was
/// built; true when it was (names cached from it may now be wrong).
pub(crate) fn refresh() -> bool {
    let objects = loaded_objects();
    let loaded: Vec<(String, u64)> = objects.iter().map(|o| (o.path.clone(), o.base)).collect();
    let mut index = INDEX.lock().unwrap_or_else(|e| e.into_inner());
    if index.as_ref().is_some_and(|i| i.loaded == loaded) {
        return false;
    }
    let had_one = index.is_some();
    *index = Some(Index {
        objects: objects.iter().filter_map(ObjectSymbols::read).collect(),
        loaded,
    });
    had_one
}

/// The raw (mangled) name of the function at `address`, if a symbol table
/// has it.
pub(crate) fn lookup(address: u64, f: impl FnOnce(&[u8]) -> String) -> Option<String> {
    let mut index = INDEX.lock().unwrap_or_else(|e| e.into_inner());
    if index.is_none() {
        drop(index);
        refresh();
        index = INDEX.lock().unwrap_or_else(|e| e.into_inner());
    }
    let index = index.as_ref()?;
    let object = index.objects.iter().find(|o| o.text.contains(&address))?;
    object.name_of(address).map(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn a_function_with_a_symbol() -> u64 {
        std::hint::black_box(42)
    }

    #[test]
    fn a_function_of_this_binary_is_found_by_an_address_inside_it() {
        let address = a_function_with_a_symbol as *const () as usize as u64 + 1;
        let name = lookup(address, |raw| {
            rustc_demangle::demangle(&String::from_utf8_lossy(raw)).to_string()
        })
        .expect("the test binary's symbol table");
        assert!(name.contains("a_function_with_a_symbol"), "{name}");
        assert!(index_bytes() > 0);
        assert!(!refresh(), "nothing was loaded meanwhile");
        assert_eq!(lookup(8, |_| String::new()), None);
    }
}
