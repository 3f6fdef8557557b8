//! The explicit `ResourceAttribution` API, with real
//! totals and averages for finished invocations.

mod common;

use agentprof::{attribution::ResourceAttribution, attribution::ResourceContext};

#[tokio::test(flavor = "current_thread")]
async fn explicit_invocations_report_usage_and_agent_totals() {
    common::setup();
    let attribution = ResourceAttribution::new();
    let ctx = ResourceContext {
        agent_name: "runner-agent".to_owned(),
        session_id: Some("session-7".to_owned()),
    };
    let (used, usage) = attribution.run(&ctx, || common::burn_cpu_ns(10_000_000));
    let usage = usage.expect("usage of a finished invocation");
    let cpu_us = usage.cpu_micros.unwrap();
    assert!(
        common::rel_diff(cpu_us, used / 1000) < 0.10,
        "{cpu_us} µs vs {} µs",
        used / 1000
    );
    assert_eq!(attribution.get_usage(usage.invocation_id), Some(usage));
    let record = agentprof::report::invocation(usage.invocation_id).unwrap();
    assert_eq!(
        record.labels,
        vec![("session".to_owned(), "session-7".to_owned())]
    );

    let (used_async, usage_async) = attribution
        .run_future(&ctx, async {
            tokio::task::yield_now().await;
            common::burn_cpu_ns(10_000_000)
        })
        .await;
    let usage_async = usage_async.unwrap();
    assert!(common::rel_diff(usage_async.cpu_micros.unwrap(), used_async / 1000) < 0.10);

    let stats = attribution.agent_stats();
    let (_, agent) = stats
        .iter()
        .find(|(name, _)| name == "runner-agent")
        .expect("agent row");
    assert_eq!(agent.invocations, 2);
    assert_eq!(agent.active_invocations, 0);
    let total = agent.total_cpu_micros.unwrap();
    assert!(common::rel_diff(total, (used + used_async) / 1000) < 0.10);
    assert_eq!(agent.avg_cpu_micros, Some(total / 2));
}

#[test]
fn active_invocations_are_counted_while_they_run() {
    common::setup();
    let attribution = ResourceAttribution::new();
    let ctx = ResourceContext {
        agent_name: "long-runner".to_owned(),
        session_id: None,
    };
    let (active_inside, _) = attribution.run(&ctx, || {
        attribution
            .agent_stats()
            .into_iter()
            .find(|(name, _)| name == "long-runner")
            .map(|(_, s)| s.active_invocations)
    });
    assert_eq!(active_inside, Some(1));
}
