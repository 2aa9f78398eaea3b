//! Instance heartbeats in `ferry-members` (in the default region).
//!
//! Every service instance rewrites its [`Member`] record (region, service, version, the tasks
//! whose job it runs) every [`HEARTBEAT_EVERY`]; the bucket's max age ([`MEMBER_TTL`]) drops the
//! record of an instance that stopped beating, so the bucket lists the live instances. A clean
//! shutdown deletes the record at once. The heartbeat is information for operators and the
//! scheduler's placement checks: which instance runs a job is decided by its lease in the
//! region's `ferry-locks` bucket (same TTL), so a lost heartbeat (a WAN cut between a region
//! and the default one) never stops work.

use crate::nats::kv_put;
use crate::KitError;
use async_nats::jetstream::kv;
use chrono::Utc;
use ferry_schemas::control::Member;
use ferry_schemas::names;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Age after which a member that stopped beating disappears (the members bucket's max age).
pub const MEMBER_TTL: Duration = Duration::from_secs(15);
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);

/// The tasks whose job runs on this instance now.
#[derive(Clone, Default)]
pub struct RunningJobs(Arc<Mutex<BTreeSet<String>>>);

impl RunningJobs {
    pub fn insert(&self, task: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(task.to_owned());
        }
    }

    pub fn remove(&self, task: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(task);
        }
    }

    pub fn list(&self) -> Vec<String> {
        self.0.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

/// Beats for `member` until `shutdown`, then removes the record.
pub fn spawn_heartbeat(
    members: kv::Store,
    mut member: Member,
    jobs: RunningJobs,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let key = names::member_key(&member.instance);
        let mut failing = false;
        loop {
            member.heartbeat_at = Utc::now();
            member.jobs = jobs.list();
            match kv_put(&members, &key, &member).await {
                Ok(_) if failing => {
                    tracing::info!("heartbeat in {} written again", names::MEMBERS_BUCKET);
                    failing = false;
                }
                Ok(_) => {}
                // Expected while the default region is unreachable; work goes on.
                Err(e) if !failing => {
                    tracing::warn!("cannot write the heartbeat ({e}); retrying every {HEARTBEAT_EVERY:?}");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if let Err(e) = members.delete(&key).await {
            tracing::debug!("heartbeat not removed ({e}); it expires by itself");
        }
    })
}

/// Every live member, ordered by region, service and instance.
pub async fn live(members: &kv::Store) -> Result<Vec<Member>, KitError> {
    let keys = crate::nats::kv_keys_with_prefix(members, "member.").await?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(m) = crate::nats::kv_get::<Member>(members, &key).await? {
            // The bucket's max age removes stale records; this also covers a clock-skewed one.
            let age = Utc::now().signed_duration_since(m.heartbeat_at);
            if age.to_std().map_or(true, |a| a <= MEMBER_TTL) {
                out.push(m);
            }
        }
    }
    out.sort_by(|a, b| (&a.region, &a.service, &a.instance).cmp(&(&b.region, &b.service, &b.instance)));
    Ok(out)
}
