//! The service's agents behind one trait: a planner that hands work to a
//! researcher on another task and to the tool caller, a librarian holding a
//! document cache, and a hasher doing CPU work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentprof::profiled;

use crate::tools::{self, ToolError};

/// One step of a session.
#[async_trait::async_trait]
pub trait Agent: Send + Sync {
    /// Runs the agent on `input`.
    async fn run(&self, input: &str) -> Result<String, ToolError>;
}

pub struct Planner {
    pub researcher: Arc<Researcher>,
    pub tools: Arc<ToolCaller>,
}

#[async_trait::async_trait]
impl Agent for Planner {
    #[profiled(agent = "planner")]
    async fn run(&self, input: &str) -> Result<String, ToolError> {
        let researcher = self.researcher.clone();
        let topic = input.to_owned();
        // Another task, still part of this invocation.
        let found = agentprof::spawn(async move { researcher.run(&topic).await })
            .await
            .expect("the research task")?;
        let outcome = self.tools.run(input).await;
        Ok(format!("{found}; {}", outcome.unwrap_or_default()))
    }
}

pub struct Researcher;

#[async_trait::async_trait]
impl Agent for Researcher {
    #[profiled(agent = "researcher")]
    async fn run(&self, input: &str) -> Result<String, ToolError> {
        tokio::task::yield_now().await;
        Ok(input.split_whitespace().rev().collect::<Vec<_>>().join(" "))
    }
}

/// Calls a tool named in the input; a malformed call fails in
/// `tools::parse_call` and the `Err` travels up by `?`.
pub struct ToolCaller;

#[async_trait::async_trait]
impl Agent for ToolCaller {
    #[profiled(agent = "tools")]
    async fn run(&self, input: &str) -> Result<String, ToolError> {
        let call = tools::parse_call(input)?;
        tokio::task::yield_now().await;
        Ok(tools::invoke(&call))
    }
}

/// Keeps every document it was asked to load, as a retrieval cache does.
pub struct Librarian {
    cache: Mutex<HashMap<String, Vec<u8>>>,
}

impl Librarian {
    pub fn new() -> Self {
        Self {
            cache: Mutex::new(HashMap::new()),
        }
    }

    #[profiled(agent = "librarian")]
    pub fn load(&self, documents: usize, bytes_each: usize) -> usize {
        let mut cache = self.cache.lock().unwrap();
        for i in 0..documents {
            let text: Vec<u8> = (0..bytes_each)
                .map(|j| (i.wrapping_mul(31).wrapping_add(j) % 251) as u8)
                .collect();
            cache.insert(format!("doc-{i}"), text);
        }
        cache.len()
    }

    /// Bytes the cache holds.
    pub fn held(&self) -> usize {
        self.cache.lock().unwrap().values().map(Vec::len).sum()
    }
}

impl Drop for Librarian {
    #[profiled(agent = "librarian")]
    fn drop(&mut self) {
        self.cache.lock().unwrap().clear();
    }
}

/// CPU-bound work: iterated hashing, logged with its result.
pub struct Hasher;

impl Hasher {
    #[profiled(agent = "hasher")]
    pub fn digest(&self, seed: u64, rounds: u64) -> u64 {
        let mut x = seed;
        for _ in 0..rounds {
            x = std::hint::black_box(x.rotate_left(13) ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(31);
        }
        tracing::info!(digest = x, "hashed");
        x
    }
}
