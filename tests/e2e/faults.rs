//! Crash anywhere during incremental sync: while a workload runs, the store, dispatcher and sink
//! are SIGKILLed at random moments (12 kills), nats-server is killed and restarted once, and the
//! target is unreachable for 30 s (a proxy in front of it drops every connection). The task
//! still ends with the target equal to the source and no row duplicated.

use crate::harness::{endpoint, Proxy, Stack};
use crate::incremental::{
    assert_equal, incremental_scenario, source_position, wait_applied, wait_phase, Workload,
};
use anyhow::{ensure, Result};
use ferry_schemas::task::Phase;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn sync_survives_kills_nats_restart_and_target_outage() -> Result<()> {
    let (db, task, mut scenario, _cleanup) = incremental_scenario("e2e_fault").await?;
    let mut stack = Stack::start("faults").await?;
    let (host, port, ..) = endpoint("target")?;
    let proxy = Proxy::start(&host, port).await?;
    scenario.vars.insert("target_port".into(), proxy.port.to_string());
    scenario.vars.insert("target_host".into(), "127.0.0.1".into());
    let workload = Workload::start(&db, 11, Duration::from_millis(2)).await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    wait_phase(&stack, &task, Phase::Incremental, Duration::from_secs(300)).await?;

    let mut rng = StdRng::seed_from_u64(20261121);
    let mut kills = 0;
    for round in 0..12 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        let victim = match rng.random_range(0..3) {
            0 => &mut stack.store,
            1 => &mut stack.dispatcher,
            _ => &mut stack.sink,
        };
        victim.kill().await?;
        victim.restart()?;
        kills += 1;
        if round == 4 {
            stack.nats.restart().await?;
        }
        if round == 8 {
            proxy.cut();
            tokio::time::sleep(Duration::from_secs(30)).await;
            proxy.restore();
        }
    }
    let txns = workload.stop().await?;
    ensure!(kills >= 10 && txns > 100, "kills {kills}, workload transactions {txns}");
    let end = source_position().await?;
    if let Err(e) = wait_applied(&stack, &task, &end, Duration::from_secs(90)).await {
        anyhow::bail!("{e}\n{}", diagnose(&stack, &task).await);
    }
    assert_equal(&db).await
}

/// Stream and consumer state of a stuck task, for the failure message.
async fn diagnose(stack: &Stack, task: &str) -> String {
    let mut out = String::new();
    let Ok(client) = async_nats::connect(&stack.nats.url).await else { return "NATS unreachable".into() };
    let js = async_nats::jetstream::new(client);
    for name in [ferry_schemas::names::cdc_stream(task), ferry_schemas::names::apply_stream(task)] {
        if let Ok(mut s) = js.get_stream(&name).await {
            if let Ok(i) = s.info().await {
                out += &format!("{name}: {:?}\n", i.state);
            }
            if let Ok(mut c) = s
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
                    &ferry_schemas::names::sink_apply_consumer(task),
                )
                .await
            {
                if let Ok(i) = c.info().await {
                    out += &format!(
                        "consumer: pending {} ack_pending {} redelivered {} delivered {:?} ack_floor {:?}\n",
                        i.num_pending, i.num_ack_pending, i.num_redelivered, i.delivered, i.ack_floor
                    );
                }
            }
        }
    }
    if let Ok(v) = stack.status(task).await {
        out += &format!("status: {:?}", v.incremental);
    }
    out
}
