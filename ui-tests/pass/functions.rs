#![deny(warnings)]

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use agentprof::profiled;

/// Documented.
#[must_use]
#[profiled(agent = "planner")]
pub fn free(a: u32) -> u32 {
    a
}

#[profiled]
pub(crate) fn no_arguments() {}

#[profiled(agent = "planner", name = "custom::label", span = false)]
fn all_but_labels() {}

#[profiled(labels(session = session, n = n + 1))]
fn with_labels(session: &str, n: u32) -> u32 {
    n
}

struct S(Vec<u8>);

impl S {
    #[profiled]
    fn associated() -> Self {
        S(Vec::new())
    }
    #[profiled]
    fn by_ref(&self) -> usize {
        self.0.len()
    }
    #[profiled]
    fn by_mut(&mut self) {
        self.0.push(1)
    }
    #[profiled]
    fn by_value(self) -> Vec<u8> {
        self.0
    }
    #[profiled]
    fn by_arc(self: Arc<Self>) -> usize {
        self.0.len()
    }
}

// Bounds in both places on purpose: the expansion must keep both.
#[allow(clippy::multiple_bound_locations)]
#[profiled]
fn generic<'a, T: Clone + 'a, const N: usize>(items: &'a [T; N]) -> Vec<T>
where
    T: Display,
{
    items.to_vec()
}

#[profiled]
fn impl_trait(value: impl Display) -> impl Display {
    value.to_string()
}

#[profiled]
unsafe fn unsafe_fn(p: *const u8) -> u8 {
    unsafe { *p }
}

#[profiled]
fn fallible(fail: bool) -> Result<u8, std::num::ParseIntError> {
    let n: u8 = if fail { "x".parse()? } else { 1 };
    Ok(n)
}

#[profiled]
fn io_result() -> std::io::Result<()> {
    Ok(())
}

#[profiled]
fn early_return(x: u8) -> u8 {
    if x > 1 {
        return 0;
    }
    x
}

fn main() {
    let _ = free(1);
    no_arguments();
    all_but_labels();
    with_labels("s", 1);
    let mut s = S::associated();
    s.by_ref();
    s.by_mut();
    let v = s.by_value();
    Arc::new(S(v)).by_arc();
    generic(&[1, 2]);
    let _ = impl_trait(3).to_string();
    unsafe { unsafe_fn(&1) };
    let _ = fallible(false);
    let _ = io_result();
    early_return(3);
    let _: &dyn Fn() -> Box<dyn Future<Output = ()>> = &|| Box::new(async {});
}
