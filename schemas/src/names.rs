//! Every stream, subject, bucket and key name, built in one place.
//!
//! No other crate writes one of these as a string literal. Identifiers that come from users
//! (database and table names) are escaped into tokens that are valid both in NATS subjects and
//! in KV keys: `[A-Za-z0-9_-]` pass through, every other byte becomes `=XX` (hex).

pub const TASKS_BUCKET: &str = "ferry-tasks";
pub const STATUS_BUCKET: &str = "ferry-status";
pub const MEMBERS_BUCKET: &str = "ferry-members";
pub const LOCKS_BUCKET: &str = "ferry-locks";
/// Database in the target holding the sink's checkpoint tables.
pub const TARGET_META_DB: &str = "ferry_meta";
pub const EVENTS_STREAM: &str = "FERRY_EVENTS";
/// Subjects captured by the shared events stream.
pub const EVENTS_SUBJECTS: &str = "ferry.*.events";

/// Escapes an identifier into a subject token / KV key segment.
pub fn token(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len());
    for b in ident.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("=00");
    }
    out
}

pub fn cdc_stream(task: &str) -> String {
    format!("FERRY_{task}_CDC")
}
pub fn cdc_subject(task: &str) -> String {
    format!("ferry.{task}.cdc")
}
pub fn full_stream(task: &str) -> String {
    format!("FERRY_{task}_FULL")
}
/// All subjects of a task's FULL stream.
pub fn full_subjects(task: &str) -> String {
    format!("ferry.{task}.full.>")
}
/// Subject of one source table in the FULL stream (its DDL and its row batches).
pub fn full_table_subject(task: &str, database: &str, table: &str) -> String {
    format!("ferry.{task}.full.{}.{}", token(database), token(table))
}
/// Subject for task-wide FULL events (views, end markers).
pub fn full_task_subject(task: &str) -> String {
    format!("ferry.{task}.full._task")
}
pub fn apply_stream(task: &str) -> String {
    format!("FERRY_{task}_APPLY")
}
pub fn apply_subject(task: &str, partition: u32) -> String {
    format!("ferry.{task}.apply.{partition}")
}
/// Subject of APPLY messages that run alone, after every partition drained (DDL, and
/// transactions whose keys span partitions).
pub fn apply_barrier_subject(task: &str) -> String {
    format!("ferry.{task}.apply.barrier")
}
/// All subjects of a task's APPLY stream.
pub fn apply_subjects(task: &str) -> String {
    format!("ferry.{task}.apply.>")
}
/// Durable consumer through which the sink reads a task's APPLY stream.
pub fn sink_apply_consumer(task: &str) -> String {
    format!("sink-apply-{task}")
}
/// A task's schema history: one message per table version, replayed by the store on start.
pub fn schema_stream(task: &str) -> String {
    format!("FERRY_{task}_SCHEMA")
}
pub fn schema_subject(task: &str) -> String {
    format!("ferry.{task}.schema")
}
/// Message id of a table version in the schema history (its table and binlog position).
pub fn schema_msg_id(task: &str, database: &str, table: &str, position: &str) -> String {
    format!("{task}:schema:{}.{}:{position}", token(database), token(table))
}
/// Message id of one CDC message: the binlog position after it and the part number.
pub fn cdc_msg_id(task: &str, position: &str, part: u32) -> String {
    format!("{task}:cdc:{position}:{part}")
}
/// Event id of the APPLY message made from one CDC message (its envelope's `event_id`).
pub fn apply_event_id(task: &str, cdc_seq: u64) -> String {
    format!("{task}:apply:{cdc_seq}")
}
pub fn check_stream(task: &str) -> String {
    format!("FERRY_{task}_CHECK")
}
pub fn check_subject(task: &str) -> String {
    format!("ferry.{task}.check")
}
pub fn events_subject(task: &str) -> String {
    format!("ferry.{task}.events")
}

/// Durable consumer through which the sink reads a task's FULL stream.
pub fn sink_full_consumer(task: &str) -> String {
    format!("sink-full-{task}")
}

/// `ferry-tasks` key holding a task record (spec + desired state).
pub fn task_key(task: &str) -> String {
    format!("task.{task}")
}
/// Prefix filter matching every task record.
pub const TASK_KEYS: &str = "task.*";
/// `ferry-tasks` key holding the assignment of one role for one task.
pub fn assignment_key(task: &str, role: &str) -> String {
    format!("assign.{task}.{role}")
}
/// Filter matching every assignment of one role.
pub fn assignment_filter(role: &str) -> String {
    format!("assign.*.{role}")
}
/// `ferry-locks` key of the lease that lets one instance of a role run a task's job.
pub fn lease_key(task: &str, role: &str) -> String {
    format!("lease.{task}.{role}")
}
/// `ferry-status` key of one component's status for one task.
pub fn status_key(task: &str, component: &str) -> String {
    format!("{task}.{component}")
}
/// `ferry-status` key of the full-copy progress of one source table.
pub fn table_progress_key(task: &str, database: &str, table: &str) -> String {
    format!("{task}.full-table.{}.{}", token(database), token(table))
}
/// Filter matching every table progress key of a task.
pub fn table_progress_filter(task: &str) -> String {
    format!("{task}.full-table.>")
}
/// Message id (JetStream de-duplication) of a table's DDL in the FULL stream.
pub fn full_ddl_msg_id(task: &str, database: &str, table: &str) -> String {
    format!("{task}:ddl:{}.{}", token(database), token(table))
}
/// Message id of one row chunk: deterministic, so a republished chunk is dropped as duplicate.
pub fn full_chunk_msg_id(task: &str, database: &str, table: &str, attempt: u32, chunk: u64) -> String {
    format!("{task}:rows:{}.{}:{attempt}:{chunk}", token(database), token(table))
}
pub fn full_done_msg_id(task: &str, database: &str, table: &str, attempt: u32) -> String {
    format!("{task}:done:{}.{}:{attempt}", token(database), token(table))
}
pub fn full_view_msg_id(task: &str, database: &str, view: &str) -> String {
    format!("{task}:view:{}.{}", token(database), token(view))
}

/// Task names become part of stream names and subjects: lowercase letters, digits, `-`, `_`.
pub fn is_valid_task_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// A region is a JetStream domain: it appears in API subjects (`$JS.<region>.API`), so it must
/// be one plain token.
pub fn is_valid_region(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Key of an instance's heartbeat in the members bucket.
pub fn member_key(instance: &str) -> String {
    format!("member.{}", token(instance))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_escape_everything_outside_the_safe_set() {
        assert_eq!(token("orders"), "orders");
        assert_eq!(token("a.b c*>"), "a=2Eb=20c=2A=3E");
        assert_eq!(token(""), "=00");
        assert_eq!(token("é"), "=C3=A9");
    }

    #[test]
    fn task_names_are_restricted() {
        assert!(is_valid_task_name("demo-1"));
        assert!(!is_valid_task_name("Demo"));
        assert!(!is_valid_task_name("a.b"));
        assert!(!is_valid_task_name("-a"));
        assert!(!is_valid_task_name(""));
    }
}
