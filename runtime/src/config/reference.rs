//! `docs/configuration.md`, written from the table of keys. A test
//! compares the file with what the table says, so the reference cannot
//! drift; `AGENTPROF_WRITE_DOCS=1` rewrites it.

// Only the test renders the reference; the build does not need it.
#![cfg(test)]

use std::fmt::Write as _;

use super::keys::{self, Key, Kind, Scope};
use super::SampleLabel;

const INTRO: &str = "\
# Configuration

<!-- Written from `runtime/src/config/keys.rs` by its test: change the table there, then
     run `AGENTPROF_WRITE_DOCS=1 cargo test -p agentprof-runtime --lib config::reference`. -->

agentprof reads the `[telemetry.profiling]` tables of your application's TOML
file (`Config::from_file`); `examples/config.toml` shows every section.

- **Precedence**: environment over code over file over defaults. Each
  variable below applies on every path that starts profiling:
  `agentprof::init`, `Profiler::from_config`, `Profiler::builder().build()`,
  `Config::from_file`; `agentprof::config::env_overrides()` lists them.
- **Errors name the key.** Every integer key has the range below, checked
  when the file or the environment is read. A value that does not parse is
  reported by line, column and key, never by quoting the line (it may hold
  a token).
- **Nothing is silently ignored.** A capability this build lacks (the
  Pyroscope exporter or `type = \"gcp\"` without its feature,
  `http.listen` without `http`) is refused by key name. An exporter's keys
  under another exporter (`gcp_zone` with `type = \"file\"`, `tenant_id`
  with `type = \"gcp\"`) are refused, naming the key, unless
  `AGENTPROF_EXPORTER_TYPE` switched the exporter: the file's keys for the
  one it named are then unused. Unknown keys inside
  `[telemetry.profiling]` are errors; `[telemetry]` is shared with your
  other telemetry, so unknown keys there are yours, except one that looks
  like a misspelling of ours (`[telemetry.proflling]`): \"did you mean\".
- **Secrets** (`basic_auth_password`, `bearer_token`, header values,
  `http.token`) are `agentprof::config::Secret`s, and endpoints lose their
  user-info and query in every `Debug`, `Serialize`, error and log line.
- **What stays local**: `cpu.labels` are what files and the live endpoint
  carry (`invocation_id`, `trace_id`, to find one invocation's samples);
  `exporter.labels` are what Pyroscope and Cloud Profiler receive, bounded
  so a backend keeps one series per agent and function.
";

fn section_title(table: &str, scope: Scope) -> String {
    let scope = match scope {
        Scope::Any => return format!("`[{table}]`"),
        Scope::File => "`type = \"file\"`",
        Scope::Pyroscope => "`type = \"pyroscope\"`",
        Scope::Gcp => "`type = \"gcp\"` (Google Cloud Profiler)",
        Scope::Requests => "`type = \"pyroscope\"` and `type = \"gcp\"`",
    };
    format!("`[{table}]` with {scope}")
}

fn kind(key: &Key) -> String {
    match key.kind {
        Kind::Bool { .. } => "boolean".into(),
        Kind::Integer { .. } => "integer".into(),
        Kind::Text => "string".into(),
        Kind::Choice(choices) => choices
            .iter()
            .map(|c| format!("`\"{c}\"`"))
            .collect::<Vec<_>>()
            .join(" or "),
        Kind::Secret => "string (secret)".into(),
        Kind::Labels => "list of labels".into(),
        Kind::Map => "table of strings".into(),
    }
}

fn default(key: &Key) -> String {
    if let Some(note) = key.default_note {
        return note.to_owned();
    }
    match key.kind {
        Kind::Bool { default } => format!("`{default}`"),
        Kind::Integer {
            default: Some(value),
            ..
        } => format!("`{value}`"),
        Kind::Choice(choices) => format!("`\"{}\"`", choices[0]),
        _ => "none".into(),
    }
}

fn allowed(key: &Key) -> String {
    match key.kind {
        Kind::Integer { min, max, unit, .. } => format!("{min} to {max} {unit}"),
        Kind::Labels => SampleLabel::ALL
            .iter()
            .map(|l| format!("`{}`", l.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

/// The reference page, from the table.
pub(crate) fn render() -> String {
    let mut out = String::from(INTRO);
    let mut current: Option<(&str, Scope)> = None;
    for key in keys::ALL {
        let table = &key.path[..key.path.len() - key.name().len() - 1];
        if current != Some((table, key.scope)) {
            current = Some((table, key.scope));
            let _ = write!(
                out,
                "\n## {}\n\n| key | type | default | allowed | environment | what it does |\n|---|---|---|---|---|---|\n",
                section_title(table, key.scope)
            );
        }
        let env = key.env.map(|e| format!("`{e}`")).unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            key.name(),
            kind(key),
            default(key),
            allowed(key),
            env,
            key.doc
        );
    }
    out
}

mod tests {
    use super::*;
    use crate::config::Config;

    fn docs_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md")
    }

    #[test]
    fn the_reference_in_docs_is_the_table() {
        let rendered = render();
        if std::env::var_os("AGENTPROF_WRITE_DOCS").is_some() {
            std::fs::write(docs_path(), &rendered).unwrap();
        }
        let on_disk = std::fs::read_to_string(docs_path()).unwrap_or_default();
        assert!(
            on_disk == rendered,
            "docs/configuration.md differs from the table in runtime/src/config/keys.rs; \
             rewrite it with AGENTPROF_WRITE_DOCS=1 cargo test -p agentprof-runtime --lib config::reference"
        );
    }

    /// The leaf paths of a TOML value: `telemetry.profiling.cpu.frequency`.
    fn leaves(prefix: &str, value: &toml::Value, into: &mut Vec<String>) {
        match value {
            toml::Value::Table(table) => {
                for (name, value) in table {
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    // Maps (tags, headers) are one key whatever they hold.
                    let is_key = keys::ALL.iter().any(|k| k.path == path);
                    if is_key {
                        into.push(path);
                    } else {
                        leaves(&path, value, into);
                    }
                }
            }
            _ => into.push(prefix.to_owned()),
        }
    }

    #[test]
    fn every_field_of_the_configuration_is_in_the_table() {
        // Set every optional key, so that serializing shows it.
        let text = "\
[telemetry.profiling]
enabled = true
[telemetry.profiling.memory]
sample_interval_bytes = 4096
[telemetry.profiling.exporter]
type = \"pyroscope\"
pyroscope_endpoint = \"http://localhost:4040\"
application_name = \"svc\"
labels = [\"agent\"]
tags = { region = \"eu\" }
basic_auth_user = \"u\"
basic_auth_password = \"p\"
tenant_id = \"t\"
headers = { x-key = \"v\" }
min_free_bytes = 0
[telemetry.profiling.http]
listen = \"127.0.0.1:0\"
token = \"0123456789abcdef\"
";
        let config = Config::from_toml_str(text).unwrap();
        let value = toml::Value::try_from(&config).unwrap();
        let mut paths = Vec::new();
        leaves("", &value, &mut paths);
        let gcp_only = [
            "gcp_project_id",
            "gcp_service",
            "gcp_service_version",
            "gcp_zone",
            "gcp_endpoint",
            "gcp_credentials_file",
            "gcp_backoff_initial_ms",
            "gcp_backoff_max_ms",
            "bearer_token",
        ];
        assert!(paths.len() >= keys::ALL.len() - gcp_only.len(), "{paths:?}");
        for path in &paths {
            assert!(
                keys::ALL.iter().any(|k| k.path == path),
                "{path} is a field of Config but not a key of the table"
            );
        }
        for key in keys::ALL {
            assert!(
                paths.contains(&key.path.to_owned()) || gcp_only.contains(&key.name()),
                "{} is in the table but not a field of Config",
                key.path
            );
        }
    }

    #[test]
    fn every_override_sets_its_key_and_every_range_is_enforced() {
        for key in keys::ALL {
            let (Some(variable), Some(_)) = (key.env, key.write) else {
                continue;
            };
            assert!(variable.starts_with("AGENTPROF_"), "{variable}");
            let Kind::Integer { min, max, .. } = key.kind else {
                continue;
            };
            let lookup =
                |value: u64| move |name: &str| (name == variable).then(|| value.to_string());
            let mut config = Config::default();
            config
                .apply_env(lookup(max))
                .unwrap_or_else(|e| panic!("{variable}={max}: {e}"));
            if let Some(read) = key.read {
                assert_eq!(read(&config), Some(max), "{variable} sets {}", key.path);
            }
            let mut config = Config::default();
            let e = config
                .apply_env(lookup(max + 1))
                .expect_err(variable)
                .to_string();
            assert!(e.contains(key.path), "{variable}={}: {e}", max + 1);
            if min > 0 && key.read.is_some() {
                let mut config = Config::default();
                let below = min - 1;
                let e = config
                    .apply_env(lookup(below))
                    .expect_err(variable)
                    .to_string();
                assert!(e.contains(key.path), "{variable}={below}: {e}");
            }
        }
    }

    #[test]
    fn an_exporters_keys_under_another_are_refused_unless_the_environment_switched_it() {
        let file = |exporter: &str, key: &str| {
            Config::from_toml_str(&format!(
                "[telemetry.profiling.exporter]\ntype = \"{exporter}\"\n{key}\n"
            ))
        };
        let cases = [
            (
                "file",
                "tenant_id = \"team-a\"",
                "tenant_id",
                "type = \"pyroscope\"",
            ),
            (
                "file",
                "pyroscope_endpoint = \"http://p:4040\"",
                "pyroscope_endpoint",
                "pyroscope",
            ),
            (
                "file",
                "bearer_token = \"t\"",
                "bearer_token",
                "\"pyroscope\" or",
            ),
            (
                "file",
                "headers = { x-key = \"v\" }",
                "headers",
                "pyroscope",
            ),
            ("file", "gcp_zone = \"z\"", "gcp_zone", "type = \"gcp\""),
            (
                "pyroscope",
                "pyroscope_endpoint = \"http://p:4040\"\ngcp_service = \"s\"",
                "gcp_service",
                "type = \"gcp\"",
            ),
            (
                "gcp",
                "tenant_id = \"team-a\"",
                "tenant_id",
                "Google credentials",
            ),
        ];
        for (exporter, line, key, hint) in cases {
            let e = file(exporter, line).expect_err(line).to_string();
            assert!(
                e.contains(&format!("exporter.{key}")) && e.contains(hint),
                "{exporter} with {line}: {e}"
            );
        }
        // Keys of the chosen exporter, and shared ones, are accepted.
        file(
            "pyroscope",
            "pyroscope_endpoint = \"http://p:4040\"\ntenant_id = \"a\"",
        )
        .unwrap();
        file("file", "max_windows = 3\nqueue_size = 2").unwrap();
        // An operator switching the exporter from the environment leaves
        // the file's keys for the other one unused.
        let mut config = file("pyroscope", "pyroscope_endpoint = \"http://p:4040\"").unwrap();
        config
            .apply_env(|name| (name == "AGENTPROF_EXPORTER_TYPE").then(|| "file".to_owned()))
            .unwrap();
        assert_eq!(
            config.telemetry.profiling.exporter.type_,
            crate::config::ExporterType::File
        );
        // Without the switch, the environment does not relax the check.
        let mut config = file("file", "").unwrap();
        let e = config
            .apply_env(|name| {
                (name == "AGENTPROF_EXPORTER_PYROSCOPE_ENDPOINT").then(|| "http://p".to_owned())
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("pyroscope_endpoint"), "{e}");
    }

    #[test]
    fn defaults_of_the_structs_are_the_tables() {
        let config = Config::default();
        for key in keys::ALL {
            if let (
                Some(read),
                Kind::Integer {
                    default: Some(d), ..
                },
            ) = (key.read, &key.kind)
            {
                // Options default to unset; their table default is what
                // the component applies.
                if let Some(value) = read(&config) {
                    assert_eq!(value, *d, "{}", key.path);
                }
            }
        }
        assert_eq!(
            config.telemetry.profiling.cpu.duration.as_secs(),
            keys::CPU_DURATION.integer_default()
        );
    }
}
