#![deny(warnings)]

use std::future::Future;
use std::pin::Pin;

use agentprof::{profile, profiled, propagation::FutureExt};

#[profiled(agent = "writer")]
async fn free_async(x: u8) -> u8 {
    x
}

#[profiled]
async fn question_mark(s: &str) -> Result<u8, std::num::ParseIntError> {
    let n: u8 = s.parse()?;
    Ok(n)
}

#[profiled]
fn returns_future(x: u8) -> impl Future<Output = u8> + Send {
    async move { x }
}

#[profiled]
#[allow(clippy::manual_async_fn)]
fn boxed(x: u8) -> Pin<Box<dyn Future<Output = Result<u8, ()>> + Send>> {
    Box::pin(async move { Ok(x) })
}

struct Agent;

impl Agent {
    #[profiled]
    async fn inherent(&self) -> u8 {
        1
    }
}

trait Tool {
    async fn call(&self) -> u8;
}

impl Tool for Agent {
    #[profiled(agent = "tools")]
    async fn call(&self) -> u8 {
        2
    }
}

#[async_trait::async_trait]
trait BoxedTool {
    async fn run(&self, s: &str) -> Result<usize, String>;
}

#[async_trait::async_trait]
impl BoxedTool for Agent {
    #[profiled(agent = "tools")]
    async fn run(&self, s: &str) -> Result<usize, String> {
        Ok(s.len())
    }
}

struct Other;

#[async_trait::async_trait]
impl BoxedTool for Other {
    #[inline(never)]
    #[profiled]
    #[allow(unused_variables)]
    async fn run(&self, s: &str) -> Result<usize, String> {
        Err(String::new())
    }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_send(free_async(1)).await;
    let _ = question_mark("1").await;
    assert_send(returns_future(1)).await;
    let _ = boxed(1).await;
    Agent.inherent().await;
    Agent.call().await;
    let _ = Agent.run("x").await;
    let _ = Other.run("x").await;
    let _ = profile!(agent = "x", labels(k = 1), async { 1 }).await;
    let _ = profile!(async { 1 }).await;
    let _ = assert_send(async { 1 }.profiled("label")).await;
    let _ = tokio::spawn(free_async(3)).await;
}
