//! `ferry`: the command line for Ferry's scheduler REST API.

mod render;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use ferry_schemas::status::{TaskState, TaskStatusView};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "ferry", version, about = "Move a live MySQL-family database with Ferry")]
struct Cli {
    /// Scheduler URL.
    #[arg(long, global = true, env = "FERRY_SERVER", default_value = "http://127.0.0.1:8480")]
    server: String,
    /// Bearer token for the API.
    #[arg(long, global = true, env = "FERRY_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage migration tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// List the live service instances (heartbeats), by region.
    Members {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Create a task from a YAML or JSON spec.
    Create {
        #[arg(short, long)]
        file: std::path::PathBuf,
        /// Start it right away.
        #[arg(long)]
        start: bool,
    },
    /// List tasks.
    List,
    /// Show a task's state and per-table progress.
    Status {
        name: String,
        /// Refresh every second until the task completes, pauses or stops.
        #[arg(long)]
        watch: bool,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    Start {
        name: String,
    },
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    Stop {
        name: String,
    },
    /// Mark the DDL statement a paused task stopped at as done (apply an equivalent change to
    /// the target by hand first if it needs one); `resume` then continues after it.
    SkipDdl {
        name: String,
    },
    /// Show the newest verification: per-table counts and the rows that differ.
    CheckReport {
        name: String,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        /// Print the correction SQL (or write it to a file with --output).
        #[arg(long)]
        sql: bool,
        #[arg(short, long, requires = "sql")]
        output: Option<std::path::PathBuf>,
    },
    /// Verify a syncing task again now (live: rows in flight are not differences).
    Verify {
        name: String,
    },
    /// Apply the correction SQL of the newest verification of a paused or completed task and
    /// re-verify the rows it wrote.
    Correct {
        name: String,
    },
    /// Delete a task that is not running (its target tables stay).
    Delete {
        name: String,
    },
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}/api/v1{path}", self.base.trim_end_matches('/')));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        r: reqwest::RequestBuilder,
    ) -> anyhow::Result<Option<T>> {
        let resp = r.send().await.map_err(|e| {
            anyhow!("cannot reach the scheduler at {} ({e}); is it running? (--server)", self.base)
        })?;
        let status = resp.status();
        let body = resp.bytes().await.context("reading the scheduler's answer")?;
        if !status.is_success() {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let msg = v
                .get("error")
                .and_then(|e| e.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("{msg}");
        }
        if body.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            serde_json::from_slice(&body).context("the scheduler's answer is not what this ferry expects")?,
        ))
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("ferry: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let api = Api { http: reqwest::Client::new(), base: cli.server, token: cli.token };
    let cmd = match cli.command {
        Command::Task(cmd) => cmd,
        Command::Members { json } => {
            let members: Vec<ferry_schemas::control::Member> =
                api.send(api.req(reqwest::Method::GET, "/members")).await?.unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&members)?);
            } else {
                print!("{}", render::members(&members, chrono::Utc::now()));
            }
            return Ok(());
        }
    };
    match cmd {
        TaskCommand::Create { file, start } => {
            let spec =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let path = if start { "/tasks?start=true" } else { "/tasks" };
            let v: Option<TaskStatusView> = api.send(api.req(reqwest::Method::POST, path).body(spec)).await?;
            if let Some(v) = v {
                println!("created task {}{}", v.name, if start { " and started it" } else { "" });
            }
        }
        TaskCommand::List => {
            let tasks: Vec<TaskStatusView> =
                api.send(api.req(reqwest::Method::GET, "/tasks")).await?.unwrap_or_default();
            print!("{}", render::list(&tasks));
        }
        TaskCommand::Status { name, watch, json } => status(&api, &name, watch, json).await?,
        TaskCommand::Start { name } => act(&api, &name, "start").await?,
        TaskCommand::Pause { name } => act(&api, &name, "pause").await?,
        TaskCommand::Resume { name } => act(&api, &name, "resume").await?,
        TaskCommand::Stop { name } => act(&api, &name, "stop").await?,
        TaskCommand::SkipDdl { name } => {
            let v: Option<TaskStatusView> =
                api.send(api.req(reqwest::Method::POST, &format!("/tasks/{name}/skip-ddl"))).await?;
            let blocked = v.and_then(|v| v.incremental).and_then(|i| i.blocked_ddl);
            match blocked {
                Some(b) => println!(
                    "task {name} will skip `{}` at {}; run `ferry task resume {name}`",
                    b.sql, b.position
                ),
                None => println!("skip-ddl recorded for task {name}; run `ferry task resume {name}`"),
            }
        }
        TaskCommand::CheckReport { name, json, sql, output } => {
            check_report(&api, &name, json, sql, output).await?
        }
        TaskCommand::Verify { name } => act(&api, &name, "verify").await?,
        TaskCommand::Correct { name } => {
            act(&api, &name, "correct").await?;
            println!("follow it with `ferry task check-report {name}`");
        }
        TaskCommand::Delete { name } => {
            api.send::<serde_json::Value>(api.req(reqwest::Method::DELETE, &format!("/tasks/{name}")))
                .await?;
            println!("deleted task {name}");
        }
    }
    Ok(())
}

async fn act(api: &Api, name: &str, action: &str) -> anyhow::Result<()> {
    api.send::<serde_json::Value>(api.req(reqwest::Method::POST, &format!("/tasks/{name}/{action}"))).await?;
    println!("{action} requested for task {name}");
    Ok(())
}

async fn check_report(
    api: &Api,
    name: &str,
    json: bool,
    sql: bool,
    output: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    if sql {
        let resp =
            api.req(reqwest::Method::GET, &format!("/tasks/{name}/check-report/sql")).send().await.map_err(
                |e| anyhow!("cannot reach the scheduler at {} ({e}); is it running? (--server)", api.base),
            )?;
        let ok = resp.status().is_success();
        let text = resp.text().await.context("reading the scheduler's answer")?;
        if !ok {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            bail!("{}", v.get("error").and_then(|e| e.as_str()).unwrap_or(&text));
        }
        match output {
            Some(path) => {
                std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
                println!("correction SQL written to {}", path.display());
            }
            None => print!("{text}"),
        }
        return Ok(());
    }
    let report: ferry_schemas::check::CheckReport = api
        .send(api.req(reqwest::Method::GET, &format!("/tasks/{name}/check-report")))
        .await?
        .ok_or_else(|| anyhow!("empty answer from the scheduler"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::check_report(&report));
    }
    Ok(())
}

async fn status(api: &Api, name: &str, watch: bool, json: bool) -> anyhow::Result<()> {
    let mut printed_lines = 0usize;
    loop {
        let v: TaskStatusView = api
            .send(api.req(reqwest::Method::GET, &format!("/tasks/{name}")))
            .await?
            .ok_or_else(|| anyhow!("empty answer from the scheduler"))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            let text = render::status(&v);
            if watch && printed_lines > 0 {
                print!("\x1b[{printed_lines}A\x1b[J");
            }
            print!("{text}");
            printed_lines = text.lines().count();
        }
        let settled = matches!(v.state, TaskState::Completed | TaskState::Paused | TaskState::Stopped);
        if !watch || settled {
            if v.error.is_some() {
                bail!("task {name} is paused by an error");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
