//! Regions: the store captures in `west` (the default region, which also runs the scheduler),
//! the dispatcher and sink apply in `east`, a leaf node of west with its own JetStream domain.
//! East reads the CDC and FULL streams through mirrors. The WAN link between the servers is cut
//! for 30 s while the source keeps writing; apply goes on in east through what had crossed
//! (a backlog built by freezing the sink just before), capture goes on in west, and once the link is back
//! the delay returns under 1 s. Then the sink holding the job dies and a standby sink of the
//! same region takes it over; the target ends equal to the source, with no duplicates.

use crate::harness::{eventually, Stack, EAST, WEST};
use crate::incremental::{
    assert_equal, incremental_scenario, source_position, wait_applied, wait_phase, Workload,
};
use anyhow::{ensure, Context, Result};
use async_nats::jetstream;
use ferry_schemas::control::Member;
use ferry_schemas::names;
use ferry_schemas::task::Phase;
use std::time::{Duration, Instant};

/// The scenario's spec with the source in west and the target in east.
fn in_regions(spec: &str) -> String {
    spec.replacen("target:\n", &format!("  region: {WEST}\ntarget:\n"), 1).replacen(
        "objects:\n",
        &format!("  region: {EAST}\nobjects:\n"),
        1,
    )
}

/// The APPLY stream sequence through which the sink has acknowledged everything, read in east.
async fn acked_through(east: &jetstream::Context, task: &str) -> Result<u64> {
    let stream = east.get_stream(names::apply_stream(task)).await?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(&names::sink_apply_consumer(task))
        .await
        .map_err(|e| anyhow::anyhow!("sink consumer: {e}"))?;
    Ok(consumer.info().await?.ack_floor.stream_sequence)
}

async fn last_seq(js: &jetstream::Context, stream: &str) -> Result<u64> {
    let mut s = js.get_stream(stream).await.with_context(|| format!("stream {stream}"))?;
    Ok(s.info().await?.state.last_sequence)
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_in_another_region_rides_out_a_cut_link_and_fails_over() -> Result<()> {
    let (db, task, scenario, _cleanup) = incremental_scenario("e2e_region").await?;
    let mut stack = Stack::start_two_regions("regions").await?;
    // A second sink in east stands by for the failover below.
    let mut standby = stack.spawn_extra("sink", "sink-east-b")?;
    let west = jetstream::new(async_nats::connect(&stack.nats.url).await?);
    let east_url = stack.regions.as_ref().context("two regions")?.east.url.clone();
    let east = jetstream::new(async_nats::connect(&east_url).await?);

    let workload = Workload::start(&db, 17, Duration::from_millis(2)).await?;
    stack.create_and_start(&in_regions(&scenario.render("task.yaml")?)).await?;
    wait_phase(&stack, &task, Phase::Incremental, Duration::from_secs(300)).await?;

    // Each stream where it belongs: CDC written in west and mirrored in east, APPLY only in east.
    let cdc = names::cdc_stream(&task);
    let mut mirror = east.get_stream(&cdc).await.context("the CDC mirror in east")?;
    let mirror_of = mirror.info().await?.config.mirror.clone().map(|m| m.name);
    ensure!(mirror_of.as_deref() == Some(cdc.as_str()), "east's {cdc} is not a mirror: {mirror_of:?}");
    ensure!(west.get_stream(names::apply_stream(&task)).await.is_err(), "APPLY must not exist in west");
    east.get_stream(names::apply_stream(&task)).await.context("APPLY in east")?;

    // Instances heartbeat in the default region, each with its region and its running jobs.
    let members = eventually("heartbeats listing the task's jobs", Duration::from_secs(20), || async {
        let (code, members) = stack.get_json("/members").await?;
        let members: Vec<Member> =
            serde_json::from_value(members).with_context(|| format!("members: HTTP {code}"))?;
        let runs = |service: &str, region: &str| {
            members.iter().any(|m| m.service == service && m.region == region && m.jobs.contains(&task))
        };
        let placed = runs("store", WEST) && runs("dispatcher", EAST) && runs("sink", EAST);
        Ok(placed.then_some(members))
    })
    .await?;
    ensure!(members.iter().any(|m| m.service == "scheduler" && m.region == WEST), "{members:?}");
    let (ok, text) = stack.cli(&["members"]).await?;
    ensure!(ok && text.contains("east") && text.contains(&task), "ferry members: {text}");

    // A backlog that crossed before the cut: the sink holding the job is frozen for a few
    // seconds while the dispatcher keeps routing what the mirror brought over.
    let holder = stack.lease_holder(&task, "sink").await?.context("no sink holds the lease")?;
    let active = if holder == stack.sink.name() { &stack.sink } else { &standby };
    ensure!(active.name() == holder, "unknown lease holder {holder}");
    active.signal("STOP").await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let captured_before = last_seq(&west, &cdc).await?;
    let applied_before = acked_through(&east, &task).await?;
    stack.regions.as_ref().context("two regions")?.link.cut();
    let cut_at = Instant::now();
    active.signal("CONT").await?;
    // Apply goes on in east on what had crossed: the default region (status, heartbeats) is
    // out of reach, the APPLY stream and the leases are local.
    let applied_during =
        eventually("the sink to apply the backlog during the cut", Duration::from_secs(25), || async {
            let acked = acked_through(&east, &task).await?;
            Ok((acked > applied_before).then_some(acked))
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(cut_at.elapsed())).await;
    // Capture went on in west while east was unreachable.
    let captured_during = last_seq(&west, &cdc).await?;
    println!("regions: APPLY acked {applied_before} -> {applied_during} in east while the link was cut");
    stack.regions.as_ref().context("two regions")?.link.restore();
    let restored = Instant::now();
    ensure!(
        captured_during > captured_before + 100,
        "capture stalled during the cut: CDC {captured_before} -> {captured_during}"
    );

    // The mirror resumes by itself and brings over what was captured during the cut.
    let backlog_end = last_seq(&west, &cdc).await?;
    eventually("the CDC mirror to resume", Duration::from_secs(60), || async {
        Ok((last_seq(&east, &cdc).await? >= backlog_end).then_some(()))
    })
    .await?;
    let mirrored_after = restored.elapsed().as_secs_f64();
    // While the source keeps writing, the delay falls back under 1 s.
    let v = eventually(
        "the delay to return under 1 s after the link is back",
        Duration::from_secs(120),
        || async {
            let v = stack.status(&task).await?;
            Ok(v.delay_seconds.filter(|d| *d < 1.0).map(|_| v))
        },
    )
    .await?;
    println!(
        "regions: {} changes captured during the cut; mirror caught up {mirrored_after:.1} s and delay {:.2} s {:.1} s after the link came back",
        backlog_end - captured_before,
        v.delay_seconds.unwrap_or_default(),
        restored.elapsed().as_secs_f64()
    );

    // Failover inside the target region: the sink running the job is killed, the standby
    // takes its lease when it expires and resumes from the target's checkpoints.
    let holder = stack.lease_holder(&task, "sink").await?.context("no sink holds the lease")?;
    let survivor = if holder == stack.sink.name() {
        stack.sink.kill().await?;
        standby.name().to_owned()
    } else {
        ensure!(holder == standby.name(), "unknown lease holder {holder}");
        standby.kill().await?;
        stack.sink.name().to_owned()
    };
    let killed = Instant::now();
    eventually("the standby sink to take the job over", Duration::from_secs(120), || async {
        Ok(stack.lease_holder(&task, "sink").await?.filter(|h| *h == survivor).map(|_| ()))
    })
    .await?;
    let takeover = killed.elapsed().as_secs_f64();
    eventually("the standby's heartbeat to list the task", Duration::from_secs(20), || async {
        let (_, members) = stack.get_json("/members").await?;
        let members: Vec<Member> = serde_json::from_value(members)?;
        Ok(members.iter().any(|m| m.instance == survivor && m.jobs.contains(&task)).then_some(()))
    })
    .await?;
    println!("regions: {survivor} took the job over {takeover:.1} s after the active sink was killed");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let txns = workload.stop().await?;
    ensure!(txns > 100, "the workload ran only {txns} transactions");
    let end = source_position().await?;
    let stopped = Instant::now();
    wait_applied(&stack, &task, &end, Duration::from_secs(90)).await?;
    println!(
        "regions: everything applied {:.1} s after the workload stopped",
        stopped.elapsed().as_secs_f64()
    );
    assert_equal(&db).await
}
