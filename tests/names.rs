//! Function labels say which method: the implementing type for inherent
//! methods, `<Type as Trait>` for trait impls, the type without its
//! arguments for generic impls; free fns keep `module::fn`.

mod common;

use agentprof::profiled;
use common::setup;

mod server {
    use agentprof::profiled;

    pub struct Listener;
    pub struct Handler;
    pub struct Store<T>(pub Vec<T>);

    pub trait Tool {
        fn call(&self) -> usize;
    }

    impl Listener {
        #[profiled(agent = "names")]
        pub fn run(&self) -> u32 {
            1
        }
    }

    impl Handler {
        #[profiled(agent = "names")]
        pub fn run(&self) -> u32 {
            2
        }

        #[profiled(agent = "names")]
        pub async fn serve(&self) -> u32 {
            3
        }
    }

    impl Drop for Handler {
        #[profiled(agent = "names")]
        fn drop(&mut self) {}
    }

    impl<T: Clone> Store<T> {
        #[profiled(agent = "names")]
        pub fn first(&self) -> Option<T> {
            self.0.first().cloned()
        }
    }

    impl<T> Tool for Store<T> {
        #[profiled(agent = "names")]
        fn call(&self) -> usize {
            self.0.len()
        }
    }

    #[profiled(agent = "names")]
    pub fn run() -> u32 {
        4
    }

    #[profiled(agent = "names", name = "custom::label")]
    pub fn renamed() -> u32 {
        5
    }
}

#[profiled(agent = "names")]
fn top_level() -> u32 {
    6
}

#[test]
fn labels_name_the_implementing_type_and_trait() {
    setup();
    use server::Tool;
    let handler = server::Handler;
    assert_eq!(server::Listener.run() + handler.run() + server::run(), 7);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(handler.serve()), 3);
    drop(handler);
    let store = server::Store(vec![1u8, 2]);
    assert_eq!(store.first(), Some(1));
    assert_eq!(server::Store(vec!["a"]).first(), Some("a"));
    assert_eq!(store.call(), 2);
    assert_eq!(server::renamed() + top_level(), 11);

    let report = agentprof::report();
    let labels: Vec<&str> = report
        .functions
        .iter()
        .filter(|r| r.agent.as_deref() == Some("names"))
        .map(|r| r.function.as_str())
        .collect();
    let module = module_path!();
    for expected in [
        format!("{module}::server::Listener::run"),
        format!("{module}::server::Handler::run"),
        format!("{module}::server::Handler::serve"),
        format!("<{module}::server::Handler as Drop>::drop"),
        format!("{module}::server::Store::first"),
        format!("<{module}::server::Store as Tool>::call"),
        format!("{module}::server::run"),
        "custom::label".to_owned(),
        format!("{module}::top_level"),
    ] {
        assert!(
            labels.contains(&expected.as_str()),
            "no row {expected:?} among {labels:?}"
        );
    }
    // Two instantiations of a generic impl share one row.
    let first = report
        .function(Some("names"), &format!("{module}::server::Store::first"))
        .unwrap();
    assert_eq!(first.calls, 2);
    assert_eq!(labels.len(), 9, "{labels:?}");
}
