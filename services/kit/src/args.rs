//! Flags every service takes (each also read from the environment).

use clap::Args;
use std::net::SocketAddr;

#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    /// NATS server URL (comma-separated for a cluster).
    #[arg(long, env = "FERRY_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Address of the /healthz, /readyz and /metrics server (port 0 picks a free one).
    #[arg(long, env = "FERRY_HTTP_ADDR", default_value = "127.0.0.1:0")]
    pub http_addr: SocketAddr,
    /// Name of this instance, unique among instances of the same role (default: role, host
    /// name and process id; keep it stable across restarts to take job leases back at once).
    #[arg(long, env = "FERRY_INSTANCE")]
    pub instance: Option<String>,
    /// Region of this instance: the JetStream domain of the NATS server at `--nats-url`. Jobs
    /// of a task go only to instances in the task's source or target region.
    #[arg(long, env = "FERRY_REGION", default_value = "local")]
    pub region: String,
    /// The default region, whose JetStream holds the control-plane buckets (tasks, status,
    /// members); reached through the domain-qualified API (`$JS.<region>.API`) from other
    /// regions. Default: this instance's region (a single-region deployment).
    #[arg(long, env = "FERRY_DEFAULT_REGION")]
    pub default_region: Option<String>,
}

impl CommonArgs {
    pub fn default_region(&self) -> &str {
        self.default_region.as_deref().unwrap_or(&self.region)
    }

    pub fn instance_name(&self, role: &str) -> String {
        self.instance.clone().unwrap_or_else(|| {
            // In containers every process is pid 1: the host name tells instances apart.
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned());
            format!("{role}-{host}-{}", std::process::id())
        })
    }
}
