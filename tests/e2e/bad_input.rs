//! Bad input: each is a clear error naming the object and the fix, the task paused (or never
//! stored), and nothing half-written that the next run trips over.

use crate::harness::{admin, binary, free_port, unique, DropOnExit, Stack};
use crate::scenario::Scenario;
use crate::verify::{same_rows, Side};
use anyhow::{ensure, Result};
use ferry_schemas::status::TaskState;
use mysql_async::prelude::*;
use std::time::Duration;

async fn database_exists(which: &str, db: &str) -> Result<bool> {
    let mut c = admin(which).await?;
    let n: Option<u64> =
        c.exec_first("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,)).await?;
    Ok(n.unwrap_or(0) > 0)
}

async fn checkpoint_rows(task: &str) -> Result<u64> {
    let mut c = admin("target").await?;
    let n: Result<Option<u64>, _> = c
        .exec_first("SELECT (SELECT COUNT(*) FROM ferry_meta.full_chunks WHERE task = ?) + (SELECT COUNT(*) FROM ferry_meta.full_objects WHERE task = ?)", (task, task))
        .await;
    Ok(n.ok().flatten().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_specs_are_refused_with_the_field_and_the_fix() -> Result<()> {
    let stack = Stack::start("bad_spec").await?;
    let scenario = Scenario::new("small", "e2e_unused", "bad-spec")?;
    let valid = scenario.render("task.yaml")?;

    let (code, body) = stack.post("/tasks", valid.replace("objects:", "tablez: 1\nobjects:")).await?;
    ensure!(
        code == 400 && body["error"].as_str().is_some_and(|e| e.contains("unknown field `tablez`")),
        "unknown field: {code} {body}"
    );

    let broken = valid
        .replace("name: \"bad-spec\"", "name: \"Bad Name\"")
        .replace(&format!("port: {}", scenario.vars["source_port"]), "port: 0")
        .replace("chunk_rows: 100", "chunk_rows: 0")
        .replace("include: [\"e2e_unused\"]", "include: []");
    let (code, body) = stack.post("/tasks", broken).await?;
    let fields: Vec<&str> = body["problems"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["field"].as_str()).collect())
        .unwrap_or_default();
    ensure!(code == 400, "invalid values: {code} {body}");
    for f in ["name", "source.port", "objects.include", "full.chunk_rows"] {
        ensure!(fields.contains(&f), "problem for {f} missing: {body}");
    }
    ensure!(
        body["problems"]
            .as_array()
            .is_some_and(|a| a.iter().all(|p| !p["fix"].as_str().unwrap_or("").is_empty())),
        "every problem has a fix"
    );

    let (code, body) =
        stack.post("/tasks", valid.replace("full:", "phases: [precheck, switchover]\nfull:")).await?;
    ensure!(code == 400 && body.to_string().contains("switchover"), "unknown phase: {code} {body}");
    let (code, body) = stack.post("/tasks", valid.replace("full:", "phases: [verify, full]\nfull:")).await?;
    ensure!(code == 400 && body.to_string().contains("out of order"), "phases out of order: {code} {body}");

    let (_, list) = stack.get_json("/tasks").await?;
    ensure!(list.as_array().is_some_and(|a| a.is_empty()), "a refused spec was stored: {list}");

    let bad_file = stack.dir.join("bad.yaml");
    std::fs::write(&bad_file, "name: x\n")?;
    let (ok, out) = stack.cli(&["task", "create", "-f", bad_file.to_str().unwrap_or_default()]).await?;
    ensure!(
        !ok && out.trim().lines().count() == 1 && out.contains("missing field"),
        "CLI on a bad spec: {out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_source_pauses_the_task_at_precheck() -> Result<()> {
    let db = unique("e2e_unreach");
    let task = db.replace('_', "-");
    let _cleanup = DropOnExit(vec![db.clone(), format!("{db}_t")]);
    let mut scenario = Scenario::new("small", &db, &task)?;
    scenario.prepare_source().await?;
    let dead_port = free_port()?.to_string();
    scenario.vars.insert("source_port".into(), dead_port.clone());
    let stack = Stack::start("unreachable").await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    let v = stack.wait_settled(&task, Duration::from_secs(120)).await?;
    let err = v.error.clone().ok_or_else(|| anyhow::anyhow!("no error: {v:?}"))?;
    ensure!(v.state == TaskState::Paused && err.code == "precheck_failed", "{v:?}");
    ensure!(
        err.message.contains("cannot connect to the source") && err.message.contains(&dead_port),
        "message names the source: {}",
        err.message
    );
    ensure!(!err.fix.is_empty());
    ensure!(!database_exists("target", &format!("{db}_t")).await?, "something was written to the target");
    ensure!(checkpoint_rows(&task).await? == 0);
    let (ok, out) = stack.cli(&["task", "status", &task]).await?;
    ensure!(!ok && out.contains("cannot connect to the source"), "ferry task status on a paused task: {out}");
    ensure!(stack.delete(&format!("/tasks/{task}")).await? == 204);
    ensure!(stack.get_json(&format!("/tasks/{task}")).await?.0 == 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_select_is_refused_at_precheck() -> Result<()> {
    let db = unique("e2e_nosel");
    let task = db.replace('_', "-");
    let _cleanup = DropOnExit(vec![db.clone(), format!("{db}_t")]);
    let mut scenario = Scenario::new("small", &db, &task)?;
    scenario.prepare_source().await?;
    let user = db.clone();
    let mut src = admin("source").await?;
    src.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'nosel-pass'; GRANT INSERT ON `{db}`.* TO '{user}'@'%'"
    ))
    .await?;
    scenario.vars.insert("source_user".into(), user.clone());
    scenario.vars.insert("source_password".into(), "nosel-pass".into());
    let stack = Stack::start("no_select").await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    let v = stack.wait_settled(&task, Duration::from_secs(120)).await;
    src.query_drop(format!("DROP USER '{user}'@'%'")).await?;
    let v = v?;
    let err = v.error.clone().ok_or_else(|| anyhow::anyhow!("no error: {v:?}"))?;
    ensure!(
        v.state == TaskState::Paused
            && err.message.contains("may not SELECT")
            && err.message.contains(&format!("{db}.accounts")),
        "{err:?}"
    );
    ensure!(err.fix.contains("GRANT SELECT"), "fix: {}", err.fix);
    ensure!(!database_exists("target", &format!("{db}_t")).await?, "something was written to the target");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_target_table_pauses_the_task_until_it_is_resolved() -> Result<()> {
    let db = unique("e2e_exists");
    let task = db.replace('_', "-");
    let tdb = format!("{db}_t");
    let _cleanup = DropOnExit(vec![db.clone(), tdb.clone()]);
    let scenario = Scenario::new("small", &db, &task)?;
    scenario.prepare_source().await?;
    let mut tgt = admin("target").await?;
    tgt.query_drop(format!("CREATE DATABASE `{tdb}`; CREATE TABLE `{tdb}`.accounts (id INT PRIMARY KEY, x INT); INSERT INTO `{tdb}`.accounts VALUES (1, 42)")).await?;
    let stack = Stack::start("exists").await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    let v = stack.wait_settled(&task, Duration::from_secs(120)).await?;
    let err = v.error.clone().ok_or_else(|| anyhow::anyhow!("no error: {v:?}"))?;
    ensure!(
        v.state == TaskState::Paused && err.message.contains(&format!("{tdb}.accounts already exists")),
        "{err:?}"
    );
    ensure!(err.fix.contains("existing_tables"), "fix: {}", err.fix);
    let untouched: Option<(i32, i32)> =
        tgt.query_first(format!("SELECT id, x FROM `{tdb}`.accounts")).await?;
    ensure!(untouched == Some((1, 42)), "the existing table was changed: {untouched:?}");
    let notes: Option<u64> = tgt
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'notes'",
            (&tdb,),
        )
        .await?;
    ensure!(notes == Some(0), "a table was created before the precheck passed");

    tgt.query_drop(format!("DROP TABLE `{tdb}`.accounts")).await?;
    let (code, body) = stack.post(&format!("/tasks/{task}/resume"), String::new()).await?;
    ensure!(code == 202, "resume: {code} {body}");
    let v = stack.wait_settled(&task, Duration::from_secs(120)).await?;
    ensure!(v.state == TaskState::Completed, "after resolving: {v:?}");
    let mut src = admin("source").await?;
    for t in ["accounts", "notes"] {
        same_rows(
            &mut Side { conn: &mut src, db: &db, table: t },
            &mut Side { conn: &mut tgt, db: &tdb, table: t },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_type_ferry_cannot_carry_is_refused_at_precheck() -> Result<()> {
    let db = unique("e2e_spatial");
    let task = db.replace('_', "-");
    let _cleanup = DropOnExit(vec![db.clone(), format!("{db}_t")]);
    let scenario = Scenario::new("small", &db, &task)?;
    scenario.prepare_source().await?;
    let mut src = admin("source").await?;
    src.query_drop(format!("CREATE TABLE `{db}`.places (id INT PRIMARY KEY, pos POINT NOT NULL)")).await?;
    let stack = Stack::start("spatial").await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    let v = stack.wait_settled(&task, Duration::from_secs(120)).await?;
    let err = v.error.clone().ok_or_else(|| anyhow::anyhow!("no error: {v:?}"))?;
    ensure!(
        v.state == TaskState::Paused
            && err.message.contains(&format!("{db}.places.pos"))
            && err.message.contains("point"),
        "{err:?}"
    );
    ensure!(err.fix.contains("objects.exclude"), "fix: {}", err.fix);
    ensure!(!database_exists("target", &format!("{db}_t")).await?, "something was written to the target");
    Ok(())
}

/// The precheck of an incremental task probes the replication privileges one by one (each
/// failure names the missing grant, each resume after granting it gets further) and refuses a
/// start position the source no longer has.
#[tokio::test(flavor = "multi_thread")]
async fn replication_privileges_and_a_purged_start_are_checked_at_precheck() -> Result<()> {
    let (db, task, mut scenario, _cleanup) = crate::incremental::incremental_scenario("e2e_norepl").await?;
    let user = db.clone();
    let mut src = admin("source").await?;
    src.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'norepl-pass'; GRANT SELECT ON `{db}`.* TO '{user}'@'%'"
    ))
    .await?;
    scenario.vars.insert("source_user".into(), user.clone());
    scenario.vars.insert("source_password".into(), "norepl-pass".into());
    let stack = Stack::start("no_repl").await?;
    let result = async {
        let failing = |v: &ferry_schemas::status::TaskStatusView| {
            v.precheck
                .iter()
                .filter(|c| c.outcome == ferry_schemas::status::CheckOutcome::Fail)
                .map(|c| format!("{}: {} (fix: {})", c.check, c.message, c.fix.clone().unwrap_or_default()))
                .collect::<Vec<_>>()
        };
        stack.create_and_start(&scenario.render("task.yaml")?).await?;
        let v = stack.wait_settled(&task, Duration::from_secs(120)).await?;
        let fails = failing(&v);
        ensure!(
            v.state == TaskState::Paused
                && fails.len() == 1
                && fails[0].starts_with("replication_privilege")
                && fails[0].contains("GRANT REPLICATION CLIENT"),
            "without REPLICATION CLIENT: {fails:?}"
        );

        src.query_drop(format!("GRANT REPLICATION CLIENT ON *.* TO '{user}'@'%'")).await?;
        let (code, _) = stack.post(&format!("/tasks/{task}/resume"), String::new()).await?;
        ensure!(code == 202, "resume: {code}");
        let v = crate::harness::eventually("the second precheck", Duration::from_secs(120), || async {
            let v = stack.status(&task).await?;
            Ok((v.state == TaskState::Paused && failing(&v).iter().any(|f| f.contains("REPLICATION SLAVE")))
                .then_some(v))
        })
        .await?;
        ensure!(failing(&v).len() == 1, "with REPLICATION CLIENT only: {:?}", failing(&v));

        src.query_drop(format!("GRANT REPLICATION SLAVE ON *.* TO '{user}'@'%'")).await?;
        let (code, _) = stack.post(&format!("/tasks/{task}/resume"), String::new()).await?;
        ensure!(code == 202, "resume: {code}");
        crate::incremental::wait_phase(
            &stack,
            &task,
            ferry_schemas::task::Phase::Incremental,
            Duration::from_secs(300),
        )
        .await?;

        // A second task asked to start in a binlog file the source does not have.
        let purged_task = format!("{task}-purged");
        let spec = scenario
            .render("task.yaml")?
            .replace(&format!("name: \"{task}\""), &format!("name: \"{purged_task}\""))
            .replace("phases: [precheck, schema, full, incremental]", "phases: [precheck, incremental]")
            .replace("incremental:\n", "incremental:\n  start: {file: purged-bin.000001, offset: 4}\n");
        stack.create_and_start(&spec).await?;
        let v = stack.wait_settled(&purged_task, Duration::from_secs(120)).await?;
        let fails = failing(&v);
        ensure!(
            v.state == TaskState::Paused
                && fails.len() == 1
                && fails[0].starts_with("binlog_position")
                && fails[0].contains("purged-bin.000001 is no longer on the source"),
            "purged start: {fails:?}"
        );
        Ok(())
    }
    .await;
    src.query_drop(format!("DROP USER '{user}'@'%'")).await?;
    result
}

/// Region settings a service cannot work with stop it at start, naming the setting and the fix.
#[tokio::test(flavor = "multi_thread")]
async fn misplaced_regions_stop_a_service_at_start() -> Result<()> {
    // Nothing listens here: the checks come before any connection.
    let nats = format!("nats://127.0.0.1:{}", free_port()?);
    let run = |service: &str, region: &str, default_region: &str| {
        let bin = binary(&format!("ferry-{service}"));
        let (nats, region, default_region) = (nats.clone(), region.to_owned(), default_region.to_owned());
        async move {
            let out = tokio::process::Command::new(bin?)
                .env("FERRY_NATS_URL", nats)
                .env("FERRY_REGION", region)
                .env("FERRY_DEFAULT_REGION", default_region)
                .output();
            let out = tokio::time::timeout(Duration::from_secs(30), out).await??;
            anyhow::Ok((out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned()))
        }
    };
    let (ok, err) = run("scheduler", "east", "west").await?;
    ensure!(!ok, "a scheduler outside the default region started");
    ensure!(err.contains("default region") && err.contains("FERRY_REGION=west"), "stderr: {err}");
    let (ok, err) = run("sink", "east.1", "west").await?;
    ensure!(!ok, "a sink with an invalid region started");
    ensure!(
        err.contains("`east.1` is not a valid region name") && err.contains("FERRY_REGION"),
        "stderr: {err}"
    );
    Ok(())
}
