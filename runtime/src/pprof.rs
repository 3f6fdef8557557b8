//! The pprof profile model (profile.proto), a builder that interns strings,
//! functions and locations, symbolization, and gzip encoding.
//!
//! `go tool pprof` is the reference reader of everything written here.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    /// What each sample value means.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// Binaries the addresses belong to.
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    /// Code locations.
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Strings referenced by index; `string_table[0]` is "".
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// Regex of frames to drop (string index).
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    /// Regex of frames to keep (string index).
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    /// Collection time, ns since the epoch.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// Collection duration, ns.
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// What `period` counts.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// Sampling period.
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form comments (string indices).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    /// Index into `sample_type` shown by default (string index of its type).
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// `perftools.profiles.ValueType`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct ValueType {
    /// Type name (string index).
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// Unit (string index).
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `perftools.profiles.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Labels.
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `perftools.profiles.Label`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Label {
    /// Key (string index).
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// String value (string index).
    #[prost(int64, tag = "2")]
    pub str: i64,
    /// Numeric value.
    #[prost(int64, tag = "3")]
    pub num: i64,
    /// Unit of `num` (string index).
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// `perftools.profiles.Mapping`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Mapping {
    /// Id, from 1.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Start address.
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    /// End address.
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    /// Offset in the file.
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// File name (string index).
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// Build id (string index).
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    /// Locations are symbolized.
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    /// File names are known.
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    /// Line numbers are known.
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    /// Inlined frames are expanded.
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// `perftools.profiles.Location`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    /// Id, from 1.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Mapping id.
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// Instruction address.
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Innermost inlined function first, the caller last.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    /// Stack was folded.
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

/// `perftools.profiles.Line`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Line {
    /// Function id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// Line number.
    #[prost(int64, tag = "2")]
    pub line: i64,
    /// Column.
    #[prost(int64, tag = "3")]
    pub column: i64,
}

/// `perftools.profiles.Function`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Function {
    /// Id, from 1.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Demangled name (string index).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// Mangled name (string index).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// Source file (string index).
    #[prost(int64, tag = "4")]
    pub filename: i64,
    /// First line.
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

impl Profile {
    /// The string at `index` of the string table ("" when out of range).
    pub fn string(&self, index: i64) -> &str {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.string_table.get(i))
            .map_or("", String::as_str)
    }

    /// Gzipped protobuf, as `go tool pprof` and Pyroscope read it.
    pub fn encode_gzip(&self) -> Vec<u8> {
        let raw = prost::Message::encode_to_vec(self);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing into a Vec cannot fail.
        let _ = gz.write_all(&raw);
        gz.finish().unwrap_or_default()
    }

    /// Reads gzipped or plain protobuf.
    pub fn decode(bytes: &[u8]) -> crate::Result<Self> {
        let decode_error = |message: String| crate::Error::ProfileDecode { message };
        let mut raw = Vec::new();
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut gz = flate2::read::GzDecoder::new(bytes);
            std::io::Read::read_to_end(&mut gz, &mut raw)
                .map_err(|e| decode_error(format!("gzip: {e}")))?;
            raw.as_slice()
        } else {
            bytes
        };
        prost::Message::decode(bytes).map_err(|e| decode_error(format!("protobuf: {e}")))
    }

    /// Function names of a sample's stack, leaf first (inlined frames
    /// expanded).
    pub fn stack_names(&self, sample: &Sample) -> Vec<&str> {
        let functions: HashMap<u64, &Function> = self.function.iter().map(|f| (f.id, f)).collect();
        let locations: HashMap<u64, &Location> = self.location.iter().map(|l| (l.id, l)).collect();
        sample
            .location_id
            .iter()
            .filter_map(|id| locations.get(id))
            .flat_map(|l| l.line.iter())
            .filter_map(|line| functions.get(&line.function_id))
            .map(|f| self.string(f.name))
            .collect()
    }

    /// A sample's string label `key`.
    pub fn label<'a>(&'a self, sample: &Sample, key: &str) -> Option<&'a str> {
        sample
            .label
            .iter()
            .find(|l| self.string(l.key) == key && l.str != 0)
            .map(|l| self.string(l.str))
    }
}

/// One symbolized frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SymbolFrame {
    pub(crate) name: String,
    pub(crate) file: String,
    pub(crate) line: u32,
}

/// Symbols of return addresses, innermost inlined frame first; cached for
/// the life of the process (code addresses do not change).
pub(crate) fn symbolize(address: usize) -> Vec<SymbolFrame> {
    // The symbolizer's allocations are the profiler's own.
    crate::alloc::untracked(|| symbolize_uncached_or_cached(address))
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
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(address, frames.clone());
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

/// Builds a [`Profile`], interning strings, functions and locations.
pub(crate) struct ProfileBuilder {
    profile: Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(String, String), u64>,
    locations: HashMap<usize, u64>,
}

impl ProfileBuilder {
    /// A profile with these `(type, unit)` sample types.
    pub(crate) fn new(sample_types: &[(&str, &str)]) -> Self {
        let mut builder = Self {
            profile: Profile::default(),
            strings: HashMap::new(),
            functions: HashMap::new(),
            locations: HashMap::new(),
        };
        builder.string("");
        builder.profile.sample_type = sample_types
            .iter()
            .map(|(t, u)| ValueType {
                r#type: builder.string(t),
                unit: builder.string(u),
            })
            .collect();
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let filename = builder.string(&exe);
        builder.profile.mapping.push(Mapping {
            id: 1,
            memory_start: 0,
            memory_limit: u64::MAX,
            file_offset: 0,
            filename,
            build_id: 0,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        });
        builder
    }

    pub(crate) fn string(&mut self, s: &str) -> i64 {
        if let Some(&index) = self.strings.get(s) {
            return index;
        }
        let index = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), index);
        index
    }

    fn function(&mut self, frame: &SymbolFrame) -> u64 {
        let key = (frame.name.clone(), frame.file.clone());
        if let Some(&id) = self.functions.get(&key) {
            return id;
        }
        let id = self.profile.function.len() as u64 + 1;
        let name = self.string(&frame.name);
        let filename = self.string(&frame.file);
        self.profile.function.push(Function {
            id,
            name,
            system_name: name,
            filename,
            start_line: 0,
        });
        self.functions.insert(key, id);
        id
    }

    fn location(&mut self, address: usize, frames: &[SymbolFrame]) -> u64 {
        if let Some(&id) = self.locations.get(&address) {
            return id;
        }
        let id = self.profile.location.len() as u64 + 1;
        let line = frames
            .iter()
            .map(|f| Line {
                function_id: self.function(f),
                line: f.line as i64,
                column: 0,
            })
            .collect();
        self.profile.location.push(Location {
            id,
            mapping_id: 1,
            address: address as u64,
            line,
            is_folded: false,
        });
        self.locations.insert(address, id);
        id
    }

    /// Adds a sample whose stack is `addresses` (leaf first), dropping the
    /// leading frames for which `skip` is true (the profiler's own).
    pub(crate) fn sample(
        &mut self,
        addresses: &[usize],
        skip: impl Fn(&str) -> bool,
        values: Vec<i64>,
        labels: &[(&str, &str)],
    ) {
        let mut location_id = Vec::with_capacity(addresses.len());
        let mut skipping = true;
        for &address in addresses {
            let frames = symbolize(address);
            if skipping && frames.iter().all(|f| skip(&f.name)) {
                continue;
            }
            skipping = false;
            location_id.push(self.location(address, &frames));
        }
        let label = labels
            .iter()
            .map(|(k, v)| Label {
                key: self.string(k),
                str: self.string(v),
                num: 0,
                num_unit: 0,
            })
            .collect();
        self.profile.sample.push(Sample {
            location_id,
            value: values,
            label,
        });
    }

    pub(crate) fn finish(
        mut self,
        period_type: (&str, &str),
        period: i64,
        default_type: &str,
        time_nanos: i64,
        duration_nanos: i64,
    ) -> Profile {
        self.profile.period_type = Some(ValueType {
            r#type: self.string(period_type.0),
            unit: self.string(period_type.1),
        });
        self.profile.period = period;
        self.profile.default_sample_type = self.string(default_type);
        self.profile.time_nanos = time_nanos;
        self.profile.duration_nanos = duration_nanos;
        self.profile
    }
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
