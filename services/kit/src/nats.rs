//! NATS connection, provisioning of Ferry's buckets and per-task streams, de-duplicated
//! publishing and JSON helpers for KV.
//!
//! Regions: an instance talks to the NATS server of its own region (a JetStream domain). The
//! control-plane buckets (tasks, status, members) live in the default region and are reached
//! from other regions through the domain-qualified API; `ferry-locks` is per region, so a job's
//! lease (and failover between instances of a region) does not depend on the WAN. A task's CDC
//! and FULL streams are written in its source region; in a target region in another domain they
//! are read through mirrors of the same name (same stream sequences), created on first use.
//!
//! Provisioning is idempotent (get, else create) so every service may call it at start-up.

use crate::backoff::Backoff;
use crate::KitError;
use async_nats::jetstream::{self, kv, stream, Context};
use bytes::Bytes;
use ferry_schemas::names;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long JetStream drops a republished message with the same `Nats-Msg-Id`.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct Nats {
    pub client: async_nats::Client,
    /// JetStream of this instance's region.
    pub js: Context,
    /// This instance's region (its server's JetStream domain).
    pub region: String,
    /// The region holding the control-plane buckets.
    pub default_region: String,
}

#[derive(Clone)]
pub struct Buckets {
    pub tasks: kv::Store,
    pub status: kv::Store,
    pub members: kv::Store,
    /// Job leases of this region's instances.
    pub locks: kv::Store,
}

impl Nats {
    /// Connects as an instance of `region`, whose control plane is in `default_region`;
    /// retries with backoff until connected or `shutdown`.
    pub async fn connect(
        url: &str,
        name: &str,
        region: &str,
        default_region: &str,
        shutdown: &CancellationToken,
    ) -> Result<Self, KitError> {
        for r in [region, default_region] {
            if !names::is_valid_region(r) {
                return Err(KitError::Config(format!(
                    "`{r}` is not a valid region name: set FERRY_REGION / FERRY_DEFAULT_REGION to a JetStream domain name (1-32 letters, digits, '-' or '_')"
                )));
            }
        }
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let opts = async_nats::ConnectOptions::new().name(name).max_reconnects(None);
            match opts.connect(url).await {
                Ok(client) => {
                    let js = jetstream::new(client.clone());
                    return Ok(Self {
                        client,
                        js,
                        region: region.to_owned(),
                        default_region: default_region.to_owned(),
                    });
                }
                Err(source) if shutdown.is_cancelled() => {
                    return Err(KitError::Connect { url: url.to_owned(), source })
                }
                Err(e) => {
                    let d = backoff.next_delay();
                    tracing::warn!("cannot connect to NATS at {url} ({e}); retrying in {d:?}");
                    tokio::select! { _ = tokio::time::sleep(d) => {}, _ = shutdown.cancelled() => {} }
                }
            }
        }
    }

    /// JetStream of `region`: this server's own, or another domain through `$JS.<region>.API`.
    pub fn js_in(&self, region: &str) -> Context {
        if region == self.region {
            self.js.clone()
        } else {
            jetstream::with_domain(self.client.clone(), region)
        }
    }

    /// JetStream of the default region (control plane).
    pub fn control(&self) -> Context {
        self.js_in(&self.default_region)
    }

    pub fn in_default_region(&self) -> bool {
        self.region == self.default_region
    }

    /// Gets or creates the shared buckets (and, in the default region, the events stream).
    pub async fn buckets(&self) -> Result<Buckets, KitError> {
        let control = self.control();
        if self.in_default_region() {
            self.js
                .get_or_create_stream(stream::Config {
                    name: names::EVENTS_STREAM.into(),
                    subjects: vec![names::EVENTS_SUBJECTS.into()],
                    storage: stream::StorageType::File,
                    max_age: Duration::from_secs(30 * 86_400),
                    ..Default::default()
                })
                .await
                .map_err(|e| KitError::nats("creating the events stream", e))?;
        }
        Ok(Buckets {
            tasks: bucket(&control, names::TASKS_BUCKET, 5, Duration::ZERO).await?,
            status: bucket(&control, names::STATUS_BUCKET, 1, Duration::ZERO).await?,
            members: bucket(&control, names::MEMBERS_BUCKET, 1, crate::members::MEMBER_TTL).await?,
            locks: bucket(&self.js, names::LOCKS_BUCKET, 1, crate::jobs::LEASE_TTL).await?,
        })
    }

    /// Gets or creates a task's FULL stream (limits retention, so it can be mirrored): written in
    /// `source_region`, a mirror of it elsewhere.
    pub async fn full_stream(&self, task: &str, source_region: &str) -> Result<stream::Stream, KitError> {
        self.task_stream(
            source_region,
            stream::Config {
                name: names::full_stream(task),
                subjects: vec![names::full_subjects(task)],
                retention: stream::RetentionPolicy::Limits,
                max_age: Duration::from_secs(14 * 86_400),
                ..Default::default()
            },
        )
        .await
    }

    /// Gets or creates a task's CDC stream: limits retention (mirrorable), kept `max_age`;
    /// written in `source_region`, a mirror of it elsewhere.
    pub async fn cdc_stream(
        &self,
        task: &str,
        max_age: Duration,
        source_region: &str,
    ) -> Result<stream::Stream, KitError> {
        self.task_stream(
            source_region,
            stream::Config {
                name: names::cdc_stream(task),
                subjects: vec![names::cdc_subject(task)],
                retention: stream::RetentionPolicy::Limits,
                max_age,
                ..Default::default()
            },
        )
        .await
    }

    /// Gets or creates a task's schema history stream (kept for the life of the task).
    pub async fn schema_stream(&self, task: &str) -> Result<stream::Stream, KitError> {
        self.local_stream(stream::Config {
            name: names::schema_stream(task),
            subjects: vec![names::schema_subject(task)],
            retention: stream::RetentionPolicy::Limits,
            ..Default::default()
        })
        .await
    }

    /// Gets or creates a task's APPLY stream, local to the target region. Limits retention: the
    /// dispatcher purges what the sink has acknowledged but keeps the message at the sink's ack
    /// floor, whose CDC range and position say where dispatch and apply stand (see
    /// `crate::apply_log`). A stream an older release created as a work queue deletes that
    /// message on ack, so it is refused with the fix.
    pub async fn apply_stream(&self, task: &str) -> Result<stream::Stream, KitError> {
        let mut stream = self
            .local_stream(stream::Config {
                name: names::apply_stream(task),
                subjects: vec![names::apply_subjects(task)],
                retention: stream::RetentionPolicy::Limits,
                ..Default::default()
            })
            .await?;
        let name = names::apply_stream(task);
        let info = stream.info().await.map_err(|e| KitError::nats(format!("reading stream {name}"), e))?;
        if info.config.retention != stream::RetentionPolicy::Limits {
            return Err(KitError::Config(format!(
                "stream {name} was created by an older Ferry as a work queue, which deletes the message this release resumes from; restart the task from a new full copy (ferry task delete, then create)"
            )));
        }
        Ok(stream)
    }

    /// Gets or creates a task's CHECK stream: verification results, kept 30 days.
    pub async fn check_stream(&self, task: &str) -> Result<stream::Stream, KitError> {
        self.local_stream(stream::Config {
            name: names::check_stream(task),
            subjects: vec![names::check_subject(task)],
            retention: stream::RetentionPolicy::Limits,
            max_age: Duration::from_secs(30 * 86_400),
            ..Default::default()
        })
        .await
    }

    /// A stream written in `source_region`: created there with `config` when this is that
    /// region, else a mirror of it in this region (same name and sequences, no subjects).
    async fn task_stream(
        &self,
        source_region: &str,
        config: stream::Config,
    ) -> Result<stream::Stream, KitError> {
        if source_region == self.region {
            return self.local_stream(config).await;
        }
        let name = config.name.clone();
        let mirror = stream::Config {
            name: name.clone(),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age: config.max_age,
            // The `external` form: `domain` is only rewritten into it by `create_stream`.
            mirror: Some(stream::Source {
                name: name.clone(),
                external: Some(stream::External {
                    api_prefix: format!("$JS.{source_region}.API"),
                    delivery_prefix: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.js.get_or_create_stream(mirror).await.map_err(|e| {
            KitError::nats(format!("creating the mirror of {name} from region {source_region}"), e)
        })
    }

    async fn local_stream(&self, config: stream::Config) -> Result<stream::Stream, KitError> {
        let name = config.name.clone();
        self.js
            .get_or_create_stream(stream::Config {
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..config
            })
            .await
            .map_err(|e| KitError::nats(format!("creating stream {name}"), e))
    }

    /// Publishes with `Nats-Msg-Id` and waits for the stream's acknowledgement.
    pub async fn publish_dedup(
        &self,
        subject: String,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<jetstream::publish::PublishAck, KitError> {
        self.publish_dedup_with(subject, msg_id, payload, async_nats::HeaderMap::new()).await
    }

    /// [`Nats::publish_dedup`] with headers (trace context).
    pub async fn publish_dedup_with(
        &self,
        subject: String,
        msg_id: &str,
        payload: Bytes,
        headers: async_nats::HeaderMap,
    ) -> Result<jetstream::publish::PublishAck, KitError> {
        let msg =
            jetstream::message::PublishMessage::build().payload(payload).message_id(msg_id).headers(headers);
        let ack = self
            .js
            .send_publish(subject.clone(), msg)
            .await
            .map_err(|e| KitError::nats(format!("publishing to {subject}"), e))?;
        ack.await.map_err(|e| KitError::nats(format!("awaiting the ack of {subject}"), e))
    }
}

/// Gets or creates a bucket in the JetStream `js` (possibly another region's).
async fn bucket(js: &Context, name: &str, history: i64, max_age: Duration) -> Result<kv::Store, KitError> {
    if let Ok(store) = js.get_key_value(name).await {
        keep_max_age(js, name, max_age).await?;
        return Ok(store);
    }
    let config = kv::Config {
        bucket: name.to_owned(),
        history,
        max_age,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another service created it at the same moment.
        Err(_) => {
            js.get_key_value(name).await.map_err(|e| KitError::nats(format!("opening bucket {name}"), e))
        }
    }
}

/// Brings an existing bucket's entry lifetime to this version's (a lease or heartbeat TTL
/// changed by an upgrade); other settings are left as they are.
async fn keep_max_age(js: &Context, name: &str, max_age: Duration) -> Result<(), KitError> {
    let stream_name = format!("KV_{name}");
    let mut stream =
        js.get_stream(&stream_name).await.map_err(|e| KitError::nats(format!("opening bucket {name}"), e))?;
    let mut config =
        stream.info().await.map_err(|e| KitError::nats(format!("reading bucket {name}"), e))?.config.clone();
    if config.max_age == max_age {
        return Ok(());
    }
    tracing::info!(bucket = name, from = ?config.max_age, to = ?max_age, "changing the bucket's entry lifetime");
    config.max_age = max_age;
    // The server refuses a duplicate window longer than the entries live.
    if !max_age.is_zero() && config.duplicate_window > max_age {
        config.duplicate_window = max_age;
    }
    js.update_stream(&config).await.map_err(|e| KitError::nats(format!("updating bucket {name}"), e))?;
    Ok(())
}

/// A task's record from the tasks bucket; [`KitError::TaskMissing`] when there is none.
pub async fn load_task(
    buckets: &Buckets,
    task: &str,
) -> Result<ferry_schemas::control::TaskRecord, KitError> {
    kv_get(&buckets.tasks, &names::task_key(task))
        .await?
        .ok_or_else(|| KitError::TaskMissing(task.to_owned()))
}

pub async fn kv_get<T: DeserializeOwned>(kv: &kv::Store, key: &str) -> Result<Option<T>, KitError> {
    Ok(kv_entry(kv, key).await?.map(|(v, _)| v))
}

/// Value and revision of a key.
pub async fn kv_entry<T: DeserializeOwned>(kv: &kv::Store, key: &str) -> Result<Option<(T, u64)>, KitError> {
    let entry = kv.entry(key).await.map_err(|e| KitError::nats(format!("reading key {key}"), e))?;
    match entry {
        Some(e) if e.operation == kv::Operation::Put => {
            let v = serde_json::from_slice(&e.value)
                .map_err(|source| KitError::Json { what: format!("key {key}"), source })?;
            Ok(Some((v, e.revision)))
        }
        _ => Ok(None),
    }
}

pub async fn kv_put<T: Serialize>(kv: &kv::Store, key: &str, value: &T) -> Result<u64, KitError> {
    let bytes =
        serde_json::to_vec(value).map_err(|source| KitError::Json { what: format!("key {key}"), source })?;
    kv.put(key, bytes.into()).await.map_err(|e| KitError::nats(format!("writing key {key}"), e))
}

/// Every key that starts with `prefix`.
pub async fn kv_keys_with_prefix(kv: &kv::Store, prefix: &str) -> Result<Vec<String>, KitError> {
    use futures::TryStreamExt;
    let keys = kv.keys().await.map_err(|e| KitError::nats("listing keys", e))?;
    let all: Vec<String> = keys.try_collect().await.map_err(|e| KitError::nats("listing keys", e))?;
    Ok(all.into_iter().filter(|k| k.starts_with(prefix)).collect())
}
