//! NATS connection, provisioning of Ferry's buckets and per-task streams, de-duplicated
//! publishing and JSON helpers for KV.
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
    pub js: Context,
}

#[derive(Clone)]
pub struct Buckets {
    pub tasks: kv::Store,
    pub status: kv::Store,
    pub members: kv::Store,
    pub locks: kv::Store,
}

impl Nats {
    /// Connects, retrying with backoff until connected or `shutdown`.
    pub async fn connect(url: &str, name: &str, shutdown: &CancellationToken) -> Result<Self, KitError> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let opts = async_nats::ConnectOptions::new().name(name).max_reconnects(None);
            match opts.connect(url).await {
                Ok(client) => {
                    let js = jetstream::new(client.clone());
                    return Ok(Self { client, js });
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

    /// Gets or creates the shared buckets and the events stream.
    pub async fn buckets(&self) -> Result<Buckets, KitError> {
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
        Ok(Buckets {
            tasks: self.bucket(names::TASKS_BUCKET, 5, Duration::ZERO).await?,
            status: self.bucket(names::STATUS_BUCKET, 1, Duration::ZERO).await?,
            members: self.bucket(names::MEMBERS_BUCKET, 1, Duration::from_secs(15)).await?,
            locks: self.bucket(names::LOCKS_BUCKET, 1, crate::jobs::LEASE_TTL).await?,
        })
    }

    async fn bucket(&self, name: &str, history: i64, max_age: Duration) -> Result<kv::Store, KitError> {
        if let Ok(store) = self.js.get_key_value(name).await {
            return Ok(store);
        }
        let config = kv::Config {
            bucket: name.to_owned(),
            history,
            max_age,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        match self.js.create_key_value(config).await {
            Ok(store) => Ok(store),
            // Another service created it at the same moment.
            Err(_) => self
                .js
                .get_key_value(name)
                .await
                .map_err(|e| KitError::nats(format!("opening bucket {name}"), e)),
        }
    }

    /// Gets or creates a task's FULL stream (limits retention: it may be mirrored across regions).
    pub async fn full_stream(&self, task: &str) -> Result<stream::Stream, KitError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: names::full_stream(task),
                subjects: vec![names::full_subjects(task)],
                storage: stream::StorageType::File,
                retention: stream::RetentionPolicy::Limits,
                duplicate_window: DUPLICATE_WINDOW,
                max_age: Duration::from_secs(14 * 86_400),
                ..Default::default()
            })
            .await
            .map_err(|e| KitError::nats(format!("creating stream {}", names::full_stream(task)), e))
    }

    /// Gets or creates a task's CDC stream: limits retention (mirrorable), kept `max_age`.
    pub async fn cdc_stream(&self, task: &str, max_age: Duration) -> Result<stream::Stream, KitError> {
        self.task_stream(stream::Config {
            name: names::cdc_stream(task),
            subjects: vec![names::cdc_subject(task)],
            retention: stream::RetentionPolicy::Limits,
            max_age,
            ..Default::default()
        })
        .await
    }

    /// Gets or creates a task's schema history stream (kept for the life of the task).
    pub async fn schema_stream(&self, task: &str) -> Result<stream::Stream, KitError> {
        self.task_stream(stream::Config {
            name: names::schema_stream(task),
            subjects: vec![names::schema_subject(task)],
            retention: stream::RetentionPolicy::Limits,
            ..Default::default()
        })
        .await
    }

    /// Gets or creates a task's APPLY stream: work-queue retention, local to the target region.
    pub async fn apply_stream(&self, task: &str) -> Result<stream::Stream, KitError> {
        self.task_stream(stream::Config {
            name: names::apply_stream(task),
            subjects: vec![names::apply_subjects(task)],
            retention: stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
    }

    /// Gets or creates a task's CHECK stream: verification results, kept 30 days.
    pub async fn check_stream(&self, task: &str) -> Result<stream::Stream, KitError> {
        self.task_stream(stream::Config {
            name: names::check_stream(task),
            subjects: vec![names::check_subject(task)],
            retention: stream::RetentionPolicy::Limits,
            max_age: Duration::from_secs(30 * 86_400),
            ..Default::default()
        })
        .await
    }

    async fn task_stream(&self, config: stream::Config) -> Result<stream::Stream, KitError> {
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
        let msg = jetstream::message::PublishMessage::build().payload(payload).message_id(msg_id);
        let ack = self
            .js
            .send_publish(subject.clone(), msg)
            .await
            .map_err(|e| KitError::nats(format!("publishing to {subject}"), e))?;
        ack.await.map_err(|e| KitError::nats(format!("awaiting the ack of {subject}"), e))
    }
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
