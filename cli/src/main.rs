//! `agentprof-cli`: agentprof's reports and profiles at the command line.
//!
//! - `diff BEFORE.json AFTER.json`: per agent and per function, what
//!   changed beyond the noise floor; `--fail-on 'cpu_p50>+10%'` exits 1
//!   when a change crosses it (a CI gate on a regression); `--format
//!   markdown` for a pull request comment.
//! - `diff BEFORE.pb.gz AFTER.pb.gz --output diff.svg`: the differential
//!   flamegraph of two CPU profiles.
//! - `show REPORT.json`: a saved report as the table `agentprof::report()`
//!   prints.
//!
//! Exit status: 0 done, 1 a threshold crossed, 2 bad input (named).

mod compare;
mod figures;
mod profile_diff;
mod render;
mod threshold;

use std::process::ExitCode;

use agentprof_runtime::api::{report::Report, report::SCHEMA_VERSION};
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};

use crate::compare::Options;
use crate::render::Format;
use crate::threshold::Threshold;

fn command() -> Command {
    Command::new("agentprof-cli")
        .about("agentprof's reports and profiles at the command line")
        .subcommand_required(true)
        .subcommand(
            Command::new("diff")
                .about(
                    "Compares two reports (JSON) per agent and function, or two CPU \
                     profiles (pprof) as a differential flamegraph",
                )
                .arg(Arg::new("before").required(true))
                .arg(Arg::new("after").required(true))
                .arg(
                    Arg::new("fail-on")
                        .long("fail-on")
                        .action(ArgAction::Append)
                        .help(
                            "Exit 1 when a change beyond the noise floor crosses this, e.g. \
                             cpu_p50>+10% (metrics: calls, cpu_p50, cpu_mean, cpu_p99, \
                             self_cpu, wall_p50, wall_p99, alloc)",
                        ),
                )
                .arg(
                    Arg::new("min-calls")
                        .long("min-calls")
                        .value_parser(value_parser!(u64))
                        .default_value("20")
                        .help("Rows with fewer calls on a side are listed, not compared"),
                )
                .arg(
                    Arg::new("noise-floor")
                        .long("noise-floor")
                        .value_parser(value_parser!(f64))
                        .default_value("3")
                        .help("Changes within this many percent are noise"),
                )
                .arg(
                    Arg::new("format")
                        .long("format")
                        .value_parser(["text", "markdown"])
                        .default_value("text"),
                )
                .arg(
                    Arg::new("output")
                        .long("output")
                        .short('o')
                        .help("Where the differential flamegraph of two profiles goes (SVG)"),
                ),
        )
        .subcommand(
            Command::new("show")
                .about("Prints a saved report as agentprof's table")
                .arg(Arg::new("report").required(true)),
        )
}

fn read_file(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn is_json(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A report of this schema or an older one (the schema only grows); a
/// newer one is refused, naming both versions.
fn read_report(path: &str, bytes: &[u8]) -> Result<Report, String> {
    let report: Report = serde_json::from_slice(bytes)
        .map_err(|e| format!("{path} is not an agentprof report: {e}"))?;
    if report.schema_version > SCHEMA_VERSION {
        return Err(format!(
            "{path} has schema_version {}, newer than the {SCHEMA_VERSION} this agentprof-cli \
             reads; use the agentprof-cli of the agentprof that wrote it",
            report.schema_version
        ));
    }
    Ok(report)
}

fn diff(args: &ArgMatches) -> Result<bool, String> {
    let before_path = args.get_one::<String>("before").expect("required");
    let after_path = args.get_one::<String>("after").expect("required");
    let (before, after) = (read_file(before_path)?, read_file(after_path)?);
    match (is_json(&before), is_json(&after)) {
        (true, true) => {}
        (false, false) => {
            let output = args.get_one::<String>("output").ok_or(
                "diffing two profiles draws a flamegraph: give --output FILE.svg".to_owned(),
            )?;
            let svg = profile_diff::differential_svg(
                &profile_diff::read(before_path, &before)?,
                &profile_diff::read(after_path, &after)?,
            )?;
            std::fs::write(output, svg).map_err(|e| format!("cannot write {output}: {e}"))?;
            println!("differential flamegraph: {output}");
            return Ok(true);
        }
        _ => {
            return Err(format!(
                "{before_path} and {after_path} are not of one kind: give two reports (JSON) \
                 or two profiles (pprof)"
            ))
        }
    }
    let thresholds = args
        .get_many::<String>("fail-on")
        .into_iter()
        .flatten()
        .map(|t| Threshold::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let options = Options {
        min_calls: *args.get_one::<u64>("min-calls").expect("defaulted"),
        noise_floor_percent: *args.get_one::<f64>("noise-floor").expect("defaulted"),
        thresholds,
    };
    if !(0.0..=1000.0).contains(&options.noise_floor_percent) {
        return Err(format!(
            "--noise-floor {} is not a percentage from 0 to 1000",
            options.noise_floor_percent
        ));
    }
    let format = match args.get_one::<String>("format").map(String::as_str) {
        Some("markdown") => Format::Markdown,
        _ => Format::Text,
    };
    let comparison = compare::compare(
        &read_report(before_path, &before)?,
        &read_report(after_path, &after)?,
        &options,
    );
    print!(
        "{}",
        render::render(&comparison, &options, (before_path, after_path), format)
    );
    Ok(comparison.failures.is_empty())
}

fn show(args: &ArgMatches) -> Result<bool, String> {
    let path = args.get_one::<String>("report").expect("required");
    let report = read_report(path, &read_file(path)?)?;
    print!("{report}");
    Ok(true)
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let result = match matches.subcommand() {
        Some(("diff", args)) => diff(args),
        Some(("show", args)) => show(args),
        _ => unreachable!("a subcommand is required"),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("agentprof-cli: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        super::command().debug_assert();
    }
}
