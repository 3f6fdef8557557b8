//! Outcomes of sync `Result` functions whose bodies run in place: `Err`
//! through the tail, `return` and `?` is an error, `Ok` through any of them
//! is not, `errors = false` opts out, and `#[track_caller]` reaches the body.

mod common;

use agentprof::profiled;
use common::setup;

fn row(suffix: &str) -> agentprof::report::FunctionRow {
    agentprof::report()
        .functions_named(suffix)
        .next()
        .cloned()
        .unwrap_or_else(|| panic!("a row for {suffix}"))
}

struct Parser {
    buffer: Vec<u8>,
}

impl Parser {
    /// `Err` by `?`, by an early `return`, and by the tail; `Ok` by an
    /// early `return` and by the tail. The `Ok` borrows through `&mut self`.
    #[profiled(agent = "outcomes")]
    fn frame(&mut self, header: &str) -> Result<&mut [u8], String> {
        let len: usize = header
            .parse()
            .map_err(|_| format!("bad header {header:?}"))?;
        if len == 0 {
            return Ok(&mut self.buffer[..0]);
        }
        if len > 100 {
            return Err("too long".to_owned());
        }
        if len > self.buffer.len() {
            Err("incomplete".to_owned())
        } else {
            Ok(&mut self.buffer[..len])
        }
    }
}

#[test]
fn every_exit_of_a_result_fn_reports_its_outcome() {
    setup();
    let mut parser = Parser {
        buffer: vec![1, 2, 3],
    };
    assert!(parser.frame("x").is_err()); // `?`
    assert!(parser.frame("0").is_ok()); // early `return Ok`
    assert!(parser.frame("101").is_err()); // early `return Err`
    assert!(parser.frame("9").is_err()); // tail `Err`
    parser.frame("2").unwrap()[0] = 7; // tail `Ok`, borrowed mutably
    assert_eq!(parser.buffer[0], 7);
    let r = row("::frame");
    assert_eq!(r.calls, 5);
    assert_eq!(r.errors, 3, "`?`, `return Err` and the tail `Err`");
}

/// `Err` here is ordinary control flow ("need more bytes").
#[profiled(agent = "outcomes", errors = false)]
fn need_more(n: usize) -> Result<usize, usize> {
    if n < 4 {
        return Err(4 - n);
    }
    Ok(n)
}

#[profiled(agent = "outcomes", errors = false)]
async fn need_more_async(n: usize) -> Result<usize, usize> {
    need_more(n)
}

#[test]
fn errors_false_keeps_err_out_of_the_errors_column() {
    setup();
    assert_eq!(need_more(1), Err(3));
    assert_eq!(need_more(5), Ok(5));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(need_more_async(2)), Err(2));
    let sync = row("::need_more");
    let fut = row("::need_more_async");
    assert_eq!((sync.calls, sync.errors), (3, 0));
    assert_eq!((fut.calls, fut.errors), (1, 0));
}

#[track_caller]
#[profiled(agent = "outcomes")]
fn caller_line() -> Result<u32, ()> {
    Ok(std::panic::Location::caller().line())
}

#[track_caller]
#[profiled(agent = "outcomes")]
fn panics_at_caller() -> Result<(), ()> {
    std::hint::black_box(None::<()>).expect("a panic located at the caller");
    Ok(())
}

#[test]
fn track_caller_reaches_the_body() {
    setup();
    let line = line!() + 1;
    let reported = caller_line().unwrap();
    assert_eq!(reported, line, "Location::caller() inside the body");

    let location = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = location.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        let ours = message.is_some_and(|m| m.contains("located at the caller"));
        if ours {
            *seen.lock().unwrap() = info.location().map(|l| l.line());
        }
    }));
    let line = line!() + 1;
    let result = std::panic::catch_unwind(|| panics_at_caller());
    std::panic::set_hook(previous);
    assert!(result.is_err());
    assert_eq!(
        *location.lock().unwrap(),
        Some(line),
        "the panic's location"
    );
    assert_eq!(row("::panics_at_caller").panics, 1);
}
