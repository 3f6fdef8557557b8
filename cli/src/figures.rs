//! What is compared: a few figures per agent and per function, each a
//! per-call quantity, so that two runs of different lengths compare.

use agentprof_runtime::api::{report::AgentRow, report::FunctionRow};

/// A figure of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Calls (root invocations, for an agent).
    Calls,
    /// Median CPU per call (functions).
    CpuP50,
    /// Mean CPU per call (per root invocation, for an agent).
    CpuMean,
    /// 99th percentile CPU per call.
    CpuP99,
    /// Mean self CPU per call: the function's own code, callees excluded.
    SelfCpu,
    /// Median wall time per call.
    WallP50,
    /// 99th percentile wall time per call.
    WallP99,
    /// Bytes allocated per call.
    Alloc,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Calls,
        Metric::CpuP50,
        Metric::CpuMean,
        Metric::CpuP99,
        Metric::SelfCpu,
        Metric::WallP50,
        Metric::WallP99,
        Metric::Alloc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Calls => "calls",
            Metric::CpuP50 => "cpu_p50",
            Metric::CpuMean => "cpu_mean",
            Metric::CpuP99 => "cpu_p99",
            Metric::SelfCpu => "self_cpu",
            Metric::WallP50 => "wall_p50",
            Metric::WallP99 => "wall_p99",
            Metric::Alloc => "alloc",
        }
    }

    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// A value of this metric, readable: ns as µs/ms/s, bytes as KiB/MiB.
    pub fn format(self, value: f64) -> String {
        match self {
            Metric::Calls => format!("{value:.0}"),
            Metric::Alloc => {
                if value >= (1 << 20) as f64 {
                    format!("{:.2} MiB", value / (1 << 20) as f64)
                } else if value >= 1024.0 {
                    format!("{:.1} KiB", value / 1024.0)
                } else {
                    format!("{value:.0} B")
                }
            }
            _ => {
                if value >= 1e9 {
                    format!("{:.2} s", value / 1e9)
                } else if value >= 1e6 {
                    format!("{:.2} ms", value / 1e6)
                } else if value >= 1e3 {
                    format!("{:.1} µs", value / 1e3)
                } else {
                    format!("{value:.0} ns")
                }
            }
        }
    }
}

/// Which row: an agent, or a function under an agent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowKey {
    Agent(Option<String>),
    Function(Option<String>, String),
}

impl std::fmt::Display for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let agent = |a: &Option<String>| a.clone().unwrap_or_else(|| "(no agent)".to_owned());
        match self {
            RowKey::Agent(a) => write!(f, "agent {}", agent(a)),
            RowKey::Function(a, function) => write!(f, "{} {function}", agent(a)),
        }
    }
}

/// A row's figures, per call.
#[derive(Clone, Debug)]
pub struct Figures {
    pub calls: u64,
    values: [Option<f64>; Metric::ALL.len()],
    /// How wide the CPU and wall distributions are: (p99 - p50) / p50.
    pub cpu_spread: Option<f64>,
    pub wall_spread: Option<f64>,
}

fn per_call(total: Option<u64>, calls: u64) -> Option<f64> {
    total.filter(|_| calls > 0).map(|t| t as f64 / calls as f64)
}

fn spread(p50: Option<u64>, p99: Option<u64>) -> Option<f64> {
    match (p50, p99) {
        (Some(p50), Some(p99)) if p50 > 0 => Some(p99.saturating_sub(p50) as f64 / p50 as f64),
        _ => None,
    }
}

impl Figures {
    pub fn get(&self, metric: Metric) -> Option<f64> {
        let index = Metric::ALL.iter().position(|m| *m == metric)?;
        self.values[index]
    }

    pub fn of_function(row: &FunctionRow) -> Figures {
        let calls = row.calls;
        let mut values = [None; Metric::ALL.len()];
        for (i, metric) in Metric::ALL.into_iter().enumerate() {
            values[i] = match metric {
                Metric::Calls => Some(calls as f64),
                Metric::CpuP50 => row.cpu_ns_p50.map(|v| v as f64),
                Metric::CpuMean => per_call(row.cpu_ns, calls),
                Metric::CpuP99 => row.cpu_ns_p99.map(|v| v as f64),
                Metric::SelfCpu => per_call(row.self_cpu_ns, calls),
                Metric::WallP50 => Some(row.wall_ns_p50 as f64),
                Metric::WallP99 => Some(row.wall_ns_p99 as f64),
                Metric::Alloc => per_call(row.alloc_bytes, calls),
            };
        }
        Figures {
            calls,
            values,
            cpu_spread: spread(row.cpu_ns_p50, row.cpu_ns_p99),
            wall_spread: spread(Some(row.wall_ns_p50), Some(row.wall_ns_p99)),
        }
    }

    pub fn of_agent(row: &AgentRow) -> Figures {
        let calls = row.root_calls;
        let mut values = [None; Metric::ALL.len()];
        for (i, metric) in Metric::ALL.into_iter().enumerate() {
            values[i] = match metric {
                Metric::Calls => Some(calls as f64),
                Metric::CpuMean => row.avg_cpu_ns.map(|v| v as f64),
                Metric::CpuP99 => row.cpu_ns_p99.map(|v| v as f64),
                Metric::WallP50 => Some(row.wall_ns_p50 as f64),
                Metric::WallP99 => Some(row.wall_ns_p99 as f64),
                Metric::Alloc => per_call(row.alloc_bytes, calls),
                // Agents keep no CPU median nor self time.
                Metric::CpuP50 | Metric::SelfCpu => None,
            };
        }
        Figures {
            calls,
            values,
            cpu_spread: spread(row.avg_cpu_ns, row.cpu_ns_p99),
            wall_spread: spread(Some(row.wall_ns_p50), Some(row.wall_ns_p99)),
        }
    }
}
