//! The pprof profile model (profile.proto) with gzip encoding and
//! decoding, the symbolizer, and a builder that interns strings, functions
//! and locations.
//!
//! `go tool pprof` is the reference reader of everything written here.

mod builder;
mod symbolize;
mod symbols;

pub(crate) use builder::ProfileBuilder;
pub(crate) use symbolize::{set_source as set_symbol_source, symbolize};
pub(crate) use symbols::index_bytes as symbol_index_bytes;

use std::collections::HashMap;
use std::io::Write;

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

/// The largest profile [`Profile::decode`] expands (256 MiB).
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

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
        // Level 1: several times faster than the default for a few percent
        // more bytes, on profiles of tens of KiB cut every window.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = gz.write_all(&raw);
        gz.finish().unwrap_or_default()
    }

    /// Reads a profile, gzipped or not; refuses one that expands past
    /// [`MAX_DECODED_BYTES`].
    pub fn decode(bytes: &[u8]) -> crate::error::Result<Self> {
        let decode_error = |message: String| crate::error::Error::ProfileDecode { message };
        let mut raw = Vec::new();
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            // A small file may expand without end (a gzip bomb): read one
            // byte past the limit to tell.
            let gz = flate2::read::GzDecoder::new(bytes);
            std::io::Read::read_to_end(
                &mut std::io::Read::take(gz, MAX_DECODED_BYTES + 1),
                &mut raw,
            )
            .map_err(|e| decode_error(format!("gzip: {e}")))?;
            if raw.len() as u64 > MAX_DECODED_BYTES {
                return Err(decode_error(format!(
                    "expands past {} MiB",
                    MAX_DECODED_BYTES >> 20
                )));
            }
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

    /// Drops every sample label whose key is not in `keys`, then merges
    /// the samples that have become alike (same stack, same labels) by
    /// adding their values: what a backend that makes a series per label
    /// set should receive.
    pub fn keep_labels(&mut self, keys: &[&str]) {
        let kept: std::collections::HashSet<i64> = self
            .string_table
            .iter()
            .enumerate()
            .filter(|(_, s)| keys.contains(&s.as_str()))
            .map(|(i, _)| i as i64)
            .collect();
        let mut merged: Vec<Sample> = Vec::with_capacity(self.sample.len());
        // (stack, labels as (key, str, num)) to the merged sample's index.
        type Likeness = (Vec<u64>, Vec<(i64, i64, i64)>);
        let mut index: HashMap<Likeness, usize> = HashMap::new();
        for mut sample in std::mem::take(&mut self.sample) {
            sample.label.retain(|l| kept.contains(&l.key));
            let key = (
                sample.location_id.clone(),
                sample.label.iter().map(|l| (l.key, l.str, l.num)).collect(),
            );
            match index.get(&key) {
                Some(&at) => {
                    for (total, value) in merged[at].value.iter_mut().zip(&sample.value) {
                        *total += value;
                    }
                }
                None => {
                    index.insert(key, merged.len());
                    merged.push(sample);
                }
            }
        }
        self.sample = merged;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeping_labels_merges_the_samples_that_become_alike() {
        let mut profile = Profile {
            string_table: ["", "agent", "invocation_id", "a", "1", "2"]
                .map(str::to_owned)
                .to_vec(),
            ..Profile::default()
        };
        let label = |key, str| Label {
            key,
            str,
            num: 0,
            num_unit: 0,
        };
        for (invocation, value) in [(4, 10), (5, 32)] {
            profile.sample.push(Sample {
                location_id: vec![7, 8],
                value: vec![1, value],
                label: vec![label(1, 3), label(2, invocation)],
            });
        }
        profile.sample.push(Sample {
            location_id: vec![9],
            value: vec![1, 5],
            label: vec![label(1, 3), label(2, 4)],
        });
        profile.keep_labels(&["agent"]);
        assert_eq!(profile.sample.len(), 2);
        let merged = &profile.sample[0];
        assert_eq!(
            (merged.location_id.as_slice(), merged.value.as_slice()),
            (&[7, 8][..], &[2, 42][..])
        );
        assert_eq!(profile.label(merged, "agent"), Some("a"));
        assert!(profile
            .sample
            .iter()
            .all(|s| profile.label(s, "invocation_id").is_none()));
    }
}
