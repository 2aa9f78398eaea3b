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
    /// Threads that run this instance's async work. A job is one loop (read, plan, write), so
    /// one thread loses it no parallelism and saves the wake-ups between threads; raise it
    /// when one instance runs the jobs of many tasks at once (see README, Benchmarks).
    #[arg(long, env = "FERRY_WORKER_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: u16,
}

impl CommonArgs {
    /// The tokio runtime a service's `main` runs on (`--worker-threads`).
    pub fn tokio_runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(self.worker_threads))
            .enable_all()
            .build()
    }

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

#[cfg(test)]
mod tests {
    use super::CommonArgs;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn worker_threads_default_to_one_and_refuse_zero() {
        let flags = Flags::try_parse_from(["svc"]).map(|f| f.common.worker_threads);
        assert_eq!(flags.ok(), Some(1));
        let flags = Flags::try_parse_from(["svc", "--worker-threads", "4"]).map(|f| f.common.worker_threads);
        assert_eq!(flags.ok(), Some(4));
        let refused = Flags::try_parse_from(["svc", "--worker-threads", "0"]).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("--worker-threads")), "zero threads must be refused");
    }
}
