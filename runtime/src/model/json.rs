//! JSON for reports, through serde-json-core rather than serde_json:
//! serde_json's `impl PartialEq<Value> for i32` (and other primitives) would
//! reach every crate that links agentprof and make inference ambiguous in
//! code such as `assert_eq!(4, xs.iter().sum())`. serde-json-core has no
//! `Value` type and adds no impls on foreign types.

use serde::Serialize;

use crate::error::{Error, Result};

/// Largest JSON document a report may take (far above any report the
/// bounded stores can produce).
const MAX_BYTES: usize = 256 << 20;

/// Compact JSON.
pub(crate) fn to_string<T: Serialize>(value: &T) -> Result<String> {
    let mut buffer = vec![0u8; 16 << 10];
    loop {
        match serde_json_core::to_slice(value, &mut buffer) {
            Ok(len) => {
                buffer.truncate(len);
                return String::from_utf8(buffer).map_err(|e| Error::Serialize {
                    message: e.to_string(),
                });
            }
            Err(serde_json_core::ser::Error::BufferFull) if buffer.len() < MAX_BYTES => {
                buffer.resize(buffer.len() * 2, 0);
            }
            Err(e) => {
                return Err(Error::Serialize {
                    message: e.to_string(),
                })
            }
        }
    }
}

/// Re-indents compact JSON with two spaces per level, as serde_json's
/// pretty printer does; strings are copied untouched.
pub(crate) fn indent(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = compact.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', depth * 2));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Empty containers stay on one line: `[]`, `{}`.
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().unwrap_or(']'));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::model::{FunctionRow, InvocationRecord, Outcome, Report, SCHEMA_VERSION};

    const TRICKY: &str = "quote \" backslash \\ newline \n tab \t bell \u{7} é 漢 🦀";

    fn tricky_report() -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            functions: vec![FunctionRow {
                function: TRICKY.to_owned(),
                agent: Some("planner".into()),
                calls: 3,
                cpu_ns: None,
                retained_bytes: Some(-42),
                ..Default::default()
            }],
            memory_note: Some(TRICKY.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn compact_and_pretty_json_match_the_reference_serializer() {
        let report = tricky_report();
        let compact = report.to_json().unwrap();
        assert_eq!(compact, serde_json::to_string(&report).unwrap());
        let pretty = report.to_json_pretty().unwrap();
        assert_eq!(pretty, serde_json::to_string_pretty(&report).unwrap());
        let back: Report = serde_json::from_str(&pretty).unwrap();
        assert_eq!(back, report);

        let record = InvocationRecord {
            id: u64::MAX,
            parent_id: None,
            agent: None,
            function: "f".into(),
            outcome: Outcome::Cancelled,
            cpu_ns: Some(7),
            self_cpu_ns: None,
            wall_ns: 0,
            self_wall_ns: 0,
            polls: 1,
            labels: vec![(TRICKY.to_owned(), TRICKY.to_owned())],
            alloc_bytes: None,
            allocs: None,
            freed_bytes: None,
            retained_bytes: None,
            peak_bytes: None,
        };
        assert_eq!(
            super::to_string(&record).unwrap(),
            serde_json::to_string(&record).unwrap()
        );
    }

    #[test]
    fn a_report_larger_than_the_first_buffer_is_written_whole() {
        let mut report = tricky_report();
        report.functions = (0..2_000)
            .map(|i| FunctionRow {
                function: format!("module::function_{i}"),
                calls: i,
                ..Default::default()
            })
            .collect();
        let json = report.to_json().unwrap();
        assert!(json.len() > 16 << 10, "{} bytes", json.len());
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.functions.len(), 2_000);
    }
}
