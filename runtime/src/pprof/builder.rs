//! Builds a pprof [`Profile`] from sampled stacks.

use std::collections::HashMap;

use super::symbolize::{has_debug_info, refresh, symbolize, SymbolFrame};
use super::{Function, Label, Line, Location, Mapping, Profile, Sample, ValueType};

/// Builds a [`Profile`], interning strings, functions and locations.
pub(crate) struct ProfileBuilder {
    profile: Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(String, String), u64>,
    /// By (address, inlined frames trimmed from its leaf end).
    locations: HashMap<(usize, usize), u64>,
}

impl ProfileBuilder {
    /// A profile with these `(type, unit)` sample types.
    pub(crate) fn new(sample_types: &[(&str, &str)]) -> Self {
        refresh();
        let debug_info = has_debug_info();
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
            has_filenames: debug_info,
            has_line_numbers: debug_info,
            has_inline_frames: debug_info,
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

    fn location(&mut self, address: usize, trimmed: usize, frames: &[SymbolFrame]) -> u64 {
        if let Some(&id) = self.locations.get(&(address, trimmed)) {
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
        self.locations.insert((address, trimmed), id);
        id
    }

    /// Adds a sample whose stack is `addresses` (leaf first), dropping the
    /// leading frames for which `skip` is true (the profiler's own and the
    /// allocator shims), inlined ones included: the first location kept
    /// starts at its first frame that is not skipped.
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
            // A location already made needs no symbols (the profiler's own
            // frames to skip only ever lead a stack).
            if !skipping {
                if let Some(&id) = self.locations.get(&(address, 0)) {
                    location_id.push(id);
                    continue;
                }
            }
            let frames = symbolize(address);
            let trimmed = if skipping {
                frames.iter().take_while(|f| skip(&f.name)).count()
            } else {
                0
            };
            if trimmed == frames.len() {
                continue;
            }
            skipping = false;
            location_id.push(self.location(address, trimmed, &frames[trimmed..]));
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
