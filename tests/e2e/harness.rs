//! Starting servers and services for one test, and polling helpers.

use anyhow::{anyhow, bail, ensure, Context, Result};
use ferry_schemas::status::{TaskState, TaskStatusView};
use mysql_async::prelude::*;
use rand::Rng;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub fn env(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| {
        anyhow!("{name} is not set: run the tests through scripts/test (it starts the dev servers)")
    })
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn binary(name: &str) -> Result<PathBuf> {
    let path = workspace().join("target").join("debug").join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build it with `cargo build --workspace --bins` (scripts/test does)",
            path.display()
        );
    }
    Ok(path)
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A unique lowercase suffix for names of databases and tasks.
pub fn unique(prefix: &str) -> String {
    let n: u32 = rand::rng().random();
    format!("{prefix}_{n:08x}")
}

pub fn scratch_dir(name: &str) -> Result<PathBuf> {
    let dir = workspace().join("target").join("e2e").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Polls `f` until it returns `Some`, or fails after `timeout` with the last observation.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what} (last error: {last_err:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A nats-server with JetStream, owned by one test.
pub struct NatsServer {
    child: Child,
    pub url: String,
    port: u16,
    dir: PathBuf,
    /// Config file, when started from one (else plain flags).
    config: Option<PathBuf>,
}

impl NatsServer {
    pub async fn start(dir: &Path) -> Result<Self> {
        let port = free_port()?;
        let child = Self::spawn(dir, port, None).await?;
        Ok(Self { child, url: format!("nats://127.0.0.1:{port}"), port, dir: dir.to_owned(), config: None })
    }

    /// A server from a config file: `config(port, store_dir)` writes its text; the file and the
    /// log are named after `name`.
    pub async fn start_config(dir: &Path, name: &str, config: impl Fn(u16, &Path) -> String) -> Result<Self> {
        let port = free_port()?;
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, config(port, &dir.join(format!("nats-{name}"))))?;
        let child = Self::spawn(dir, port, Some(&path)).await?;
        Ok(Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            dir: dir.to_owned(),
            config: Some(path),
        })
    }

    async fn spawn(dir: &Path, port: u16, config: Option<&Path>) -> Result<Child> {
        let bin = env("FERRY_NATS_BIN")?;
        let log_name = match config {
            Some(c) => format!("{}.log", c.file_stem().unwrap_or_default().to_string_lossy()),
            None => "nats.log".to_owned(),
        };
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(log_name))?;
        let mut cmd = Command::new(bin);
        match config {
            Some(c) => cmd.arg("-c").arg(c),
            None => {
                cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]).arg(dir.join("nats"))
            }
        };
        let child = cmd
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("starting nats-server")?;
        eventually("nats-server to accept connections", Duration::from_secs(20), || async {
            Ok(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ()))
        })
        .await?;
        Ok(child)
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and store.
    pub async fn restart(&mut self) -> Result<()> {
        self.child.kill().await?;
        self.child = Self::spawn(&self.dir, self.port, self.config.as_deref()).await?;
        Ok(())
    }
}

/// Two regions: `west` (the default region: scheduler, store, full-migrator) and `east`
/// (dispatcher, sink, checker), each a nats-server with its own JetStream domain; east is a
/// leaf node of west, through a proxy that plays the WAN link.
pub struct TwoRegions {
    pub east: NatsServer,
    pub link: Proxy,
}

pub const WEST: &str = "west";
pub const EAST: &str = "east";

impl TwoRegions {
    /// Starts the west hub (returned apart: it becomes the stack's `nats`) and the east leaf.
    pub async fn start(dir: &Path) -> Result<(NatsServer, Self)> {
        let leaf_port = free_port()?;
        // The proxy is started first: the hub must advertise it as its leaf address, or the leaf
        // would learn the hub's own address and reconnect around the cut link.
        let link = Proxy::start("127.0.0.1", leaf_port).await?;
        let link_port = link.port;
        let west = NatsServer::start_config(dir, WEST, |port, store| {
            format!(
                "server_name: {WEST}\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\", domain: {WEST} }}\nleafnodes {{ listen: 127.0.0.1:{leaf_port}, advertise: \"127.0.0.1:{link_port}\" }}\n",
                store.display()
            )
        })
        .await?;
        let east = NatsServer::start_config(dir, EAST, |port, store| {
            format!(
                "server_name: {EAST}\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\", domain: {EAST} }}\nleafnodes {{ reconnect: \"1s\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{link_port}\", deny_imports: [\"ferry.>\"], deny_exports: [\"ferry.>\"] }} ] }}\n",
                store.display()
            )
        })
        .await?;
        Ok((west, Self { east, link }))
    }
}

/// A TCP proxy in front of a server, which a test can cut (refusing and dropping every
/// connection) and restore, to make that server unreachable for the services.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(host: &str, port: u16) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?.port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let target = format!("{host}:{port}");
        let (u, c) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        // Without this, Nagle's algorithm adds ~40 ms to every round trip.
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut v) = c.lock() {
                    v.retain(|h| !h.is_finished());
                    v.push(h);
                }
            }
        });
        Ok(Self { port: local, up, conns, accept })
    }

    /// Drops every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut v) = self.conns.lock() {
            for h in v.drain(..) {
                h.abort();
            }
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// One service process.
pub struct Service {
    /// Role, i.e. the binary `ferry-<role>`.
    role: String,
    name: String,
    child: Option<Child>,
    envs: Vec<(String, String)>,
    log: PathBuf,
    starts: u32,
}

impl Service {
    pub fn spawn(name: &str, envs: Vec<(String, String)>, dir: &Path) -> Result<Self> {
        Self::spawn_as(name, name, envs, dir)
    }

    /// Starts the `role` binary as instance `name` (stable across restarts, so a restarted
    /// instance takes its own job leases back at once).
    pub fn spawn_as(role: &str, name: &str, mut envs: Vec<(String, String)>, dir: &Path) -> Result<Self> {
        envs.push(("FERRY_INSTANCE".to_owned(), name.to_owned()));
        let log = dir.join(format!("{name}.log"));
        let mut s = Self { role: role.to_owned(), name: name.to_owned(), child: None, envs, log, starts: 0 };
        s.start()?;
        Ok(s)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets (or with `None` removes) an environment variable for the next start.
    pub fn set_env(&mut self, name: &str, value: Option<&str>) {
        self.envs.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.envs.push((name.to_owned(), v.to_owned()));
        }
    }

    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new(binary(&format!("ferry-{}", self.role))?);
        cmd.envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", std::env::var("FERRY_E2E_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        self.child = Some(cmd.spawn().with_context(|| format!("starting {}", self.name))?);
        self.starts += 1;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// True when the process has ended.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// SIGKILL, then wait for the process to be gone.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().await?;
        }
        Ok(())
    }

    pub fn restart(&mut self) -> Result<()> {
        self.start()
    }

    /// Freezes (`STOP`) or thaws (`CONT`) the process: alive, holding its connections, doing
    /// nothing.
    pub async fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid().with_context(|| format!("{} is not running", self.name))?;
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().await?;
        ensure!(status.success(), "kill -{signal} {pid} failed");
        Ok(())
    }
}

/// NATS plus the scheduler, full-migrator and sink as processes.
pub struct Stack {
    pub dir: PathBuf,
    /// Held for the test's lifetime: dropping it stops the server.
    pub nats: NatsServer,
    #[allow(dead_code)]
    pub scheduler: Service,
    pub full_migrator: Service,
    pub sink: Service,
    #[allow(dead_code)]
    pub store: Service,
    #[allow(dead_code)]
    pub dispatcher: Service,
    #[allow(dead_code)]
    pub checker: Service,
    pub api: String,
    http: reqwest::Client,
    /// Port of each worker service's /metrics, by role.
    metrics_ports: std::collections::HashMap<&'static str, u16>,
    /// Environment of each role's instances (NATS URL and region differ between regions).
    role_env: std::collections::HashMap<&'static str, Vec<(String, String)>>,
    /// The second region, when the stack spans two.
    pub regions: Option<TwoRegions>,
}

/// Starts `role` on a port found free, and checks that this very process answers `probe` on
/// it: a port found free can be taken by another process (one binding port 0) before the
/// service binds it, so a service that exited, or a port answered by someone else, means
/// another port.
async fn spawn_on_free_port(
    role: &str,
    dir: &Path,
    http: &reqwest::Client,
    probe: &str,
    env_for: impl Fn(u16) -> Vec<(String, String)>,
) -> Result<(Service, u16)> {
    for _ in 0..5 {
        let port = free_port()?;
        let mut service = Service::spawn(role, env_for(port), dir)?;
        let url = format!("http://127.0.0.1:{port}{probe}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline && !service.exited() {
            // The port must be this process's listening socket, not another one's.
            if service.pid().is_some_and(|pid| listens_on(pid, port))
                && http.get(&url).send().await.ok().filter(|r| r.status().is_success()).is_some()
            {
                return Ok((service, port));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        service.kill().await?;
    }
    bail!("{role} could not start on a free port (see {}/{role}.log)", dir.display())
}

/// True when process `pid` has a socket listening on 127.0.0.1:`port` (Linux /proc).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else { return false };
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode.
            (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
                .then(|| f.get(9).map(|s| (*s).to_owned()))?
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|t| inodes.iter().any(|i| t.to_string_lossy() == format!("socket:[{i}]")))
    })
}

impl Stack {
    /// Everything in one region on one nats-server.
    pub async fn start(test: &str) -> Result<Self> {
        Self::start_with_env(test, Vec::new()).await
    }

    /// One region, every service also given `extra` environment.
    pub async fn start_with_env(test: &str, extra: Vec<(String, String)>) -> Result<Self> {
        let dir = scratch_dir(test)?;
        let nats = NatsServer::start(&dir).await?;
        Self::start_services(dir, nats, None, extra).await
    }

    /// Two regions ([`TwoRegions`]): source-side roles in west, target-side roles in east.
    pub async fn start_two_regions(test: &str) -> Result<Self> {
        let dir = scratch_dir(test)?;
        let (west, regions) = TwoRegions::start(&dir).await?;
        Self::start_services(dir, west, Some(regions), Vec::new()).await
    }

    async fn start_services(
        dir: PathBuf,
        nats: NatsServer,
        regions: Option<TwoRegions>,
        extra: Vec<(String, String)>,
    ) -> Result<Self> {
        let mut base = vec![
            ("FERRY_SECRET_KEY".to_owned(), "e2e-secret".to_owned()),
            ("FERRY_HTTP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ];
        base.extend(extra);
        let mut role_env = std::collections::HashMap::new();
        for role in ["scheduler", "full-migrator", "sink", "store", "dispatcher", "checker"] {
            let mut e = base.clone();
            match &regions {
                None => e.push(("FERRY_NATS_URL".to_owned(), nats.url.clone())),
                Some(r) => {
                    let east = matches!(role, "sink" | "dispatcher" | "checker");
                    let url = if east { &r.east.url } else { &nats.url };
                    e.push(("FERRY_NATS_URL".to_owned(), url.clone()));
                    e.push(("FERRY_REGION".to_owned(), (if east { EAST } else { WEST }).to_owned()));
                    e.push(("FERRY_DEFAULT_REGION".to_owned(), WEST.to_owned()));
                }
            }
            role_env.insert(role, e);
        }
        let with_http = |role: &str, port: u16| {
            let mut e = role_env.get(role).cloned().unwrap_or_default();
            e.retain(|(k, _)| k != "FERRY_HTTP_ADDR");
            e.push(("FERRY_HTTP_ADDR".to_owned(), format!("127.0.0.1:{port}")));
            e
        };
        let http = reqwest::Client::new();
        let (scheduler, api_port) = spawn_on_free_port("scheduler", &dir, &http, "/api/v1/tasks", |port| {
            let mut e = role_env["scheduler"].clone();
            e.push(("FERRY_API_ADDR".into(), format!("127.0.0.1:{port}")));
            e
        })
        .await?;
        let (full_migrator, fm_port) =
            spawn_on_free_port("full-migrator", &dir, &http, "/metrics", |p| with_http("full-migrator", p))
                .await?;
        let (sink, sink_port) =
            spawn_on_free_port("sink", &dir, &http, "/metrics", |p| with_http("sink", p)).await?;
        let (store, store_port) =
            spawn_on_free_port("store", &dir, &http, "/metrics", |p| with_http("store", p)).await?;
        let (dispatcher, dispatcher_port) =
            spawn_on_free_port("dispatcher", &dir, &http, "/metrics", |p| with_http("dispatcher", p)).await?;
        let (checker, checker_port) =
            spawn_on_free_port("checker", &dir, &http, "/metrics", |p| with_http("checker", p)).await?;
        let metrics_ports = [
            ("full-migrator", fm_port),
            ("sink", sink_port),
            ("store", store_port),
            ("dispatcher", dispatcher_port),
            ("checker", checker_port),
        ]
        .into_iter()
        .collect();
        let api = format!("http://127.0.0.1:{api_port}");
        Ok(Self {
            dir,
            nats,
            scheduler,
            full_migrator,
            sink,
            store,
            dispatcher,
            checker,
            api,
            http,
            metrics_ports,
            role_env,
            regions,
        })
    }

    pub async fn post(&self, path: &str, body: String) -> Result<(u16, serde_json::Value)> {
        let r = self.http.post(format!("{}/api/v1{path}", self.api)).body(body).send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)))
    }

    pub async fn delete(&self, path: &str) -> Result<u16> {
        Ok(self.http.delete(format!("{}/api/v1{path}", self.api)).send().await?.status().as_u16())
    }

    pub async fn get_json(&self, path: &str) -> Result<(u16, serde_json::Value)> {
        let r = self.http.get(format!("{}/api/v1{path}", self.api)).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(serde_json::Value::Null)))
    }

    pub async fn status(&self, task: &str) -> Result<TaskStatusView> {
        let (code, v) = self.get_json(&format!("/tasks/{task}")).await?;
        if code != 200 {
            bail!("GET task {task}: HTTP {code}: {v}");
        }
        Ok(serde_json::from_value(v)?)
    }

    pub async fn create_and_start(&self, spec: &str) -> Result<String> {
        let (code, v) = self.post("/tasks?start=true", spec.to_owned()).await?;
        if code != 201 {
            bail!("creating the task: HTTP {code}: {v}");
        }
        Ok(v["name"].as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the task settles (completed, paused or stopped) and returns its view.
    pub async fn wait_settled(&self, task: &str, timeout: Duration) -> Result<TaskStatusView> {
        eventually(&format!("task {task} to settle"), timeout, || async {
            let v = self.status(task).await?;
            Ok(matches!(v.state, TaskState::Completed | TaskState::Paused | TaskState::Stopped).then_some(v))
        })
        .await
    }

    /// Starts one more instance of a role (for fail-over tests).
    pub fn spawn_extra(&self, role: &str, name: &str) -> Result<Service> {
        let env = self.role_env.get(role).cloned().with_context(|| format!("unknown role {role}"))?;
        Service::spawn_as(role, name, env, &self.dir)
    }

    /// The instance holding a task's lease for a role, read from its region's `ferry-locks`.
    pub async fn lease_holder(&self, task: &str, role: &str) -> Result<Option<String>> {
        let url = match &self.regions {
            Some(r) if matches!(role, "sink" | "dispatcher" | "checker") => &r.east.url,
            _ => &self.nats.url,
        };
        let client = async_nats::connect(url).await?;
        let kv = async_nats::jetstream::new(client).get_key_value(ferry_schemas::names::LOCKS_BUCKET).await?;
        let value = kv.get(ferry_schemas::names::lease_key(task, role)).await?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The Prometheus text of a worker service (`sink`, `store`, `dispatcher`, ...).
    pub async fn metrics_of(&self, role: &str) -> Result<String> {
        let port = self.metrics_ports.get(role).with_context(|| format!("no /metrics port for {role}"))?;
        Ok(self.http.get(format!("http://127.0.0.1:{port}/metrics")).send().await?.text().await?)
    }

    /// Runs the `ferry` CLI against this stack.
    pub async fn cli(&self, args: &[&str]) -> Result<(bool, String)> {
        let out = Command::new(binary("ferry")?).arg("--server").arg(&self.api).args(args).output().await?;
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }
}

/// An admin connection to the source or the target server.
pub async fn admin(which: &str) -> Result<mysql_async::Conn> {
    let url = env(match which {
        "source" => "FERRY_SOURCE_URL",
        _ => "FERRY_TARGET_URL",
    })?;
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url)?).await?;
    conn.query_drop("SET NAMES utf8mb4").await?;
    Ok(conn)
}

/// Host, port, user and password of a dev server from its URL.
pub fn endpoint(which: &str) -> Result<(String, u16, String, String)> {
    let url = env(match which {
        "source" => "FERRY_SOURCE_URL",
        _ => "FERRY_TARGET_URL",
    })?;
    let opts = mysql_async::Opts::from_url(&url)?;
    Ok((
        opts.ip_or_hostname().to_string(),
        opts.tcp_port(),
        opts.user().unwrap_or_default().to_owned(),
        opts.pass().unwrap_or_default().to_owned(),
    ))
}

/// Drops the named databases on both servers when the test ends, passed or failed.
pub struct DropOnExit(pub Vec<String>);

impl Drop for DropOnExit {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                    drop_databases(&refs).await;
                });
            }
        });
        let _ = handle.join();
    }
}

pub async fn drop_databases(names: &[&str]) {
    for (which, db) in names.iter().flat_map(|d| [("source", *d), ("target", *d)]) {
        if let Ok(mut c) = admin(which).await {
            let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{db}`")).await;
        }
    }
}
