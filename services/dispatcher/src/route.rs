//! From a CDC event to an APPLY event: filters, renames, and the causality partition.
//!
//! Causality: every row change names the keys it touches, its primary key and each unique key,
//! in its before and after image, on the *target* table (so rows of several source shards
//! merged into one target table order against each other). Strings are compared lower-cased
//! and without trailing spaces, because the target's collation may treat them as equal; that
//! only ever makes two keys look equal when they are not, which costs parallelism, never order.
//! A transaction goes to the one partition that still has one of its keys in flight, to the
//! partition its first key hashes to when none is in flight (while the sink catches up: to the
//! partition of the transaction before it, see [`Causality::route`]). When its keys are in flight in
//! several partitions it becomes a barrier (or, with [`JOIN_PARTITIONS`], goes to one of them
//! and *joins* the others: it carries their latest APPLY sequences, and the sink applies it
//! only after those).
//!
//! Every part of a source transaction the store split over several messages is a barrier: the
//! keys of its later parts are unknown when the first is routed, and as consecutive barriers
//! the parts reach the sink together, which commits them as one target transaction (up to
//! `incremental.max_atomic_mb`), so the target never shows the transaction half applied.

use crate::raw::{Event, RawChange, RawTransaction, TableMap};
use ferry_schemas::cdc::{CdcEvent, ChangeOp, RowChange, TableVersion, Transaction};
use ferry_schemas::task::TaskSpec;
use serde_json::value::RawValue;
use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

/// Maps a CDC event to the target: renamed tables, DML and DDL filters. Returns the event to
/// dispatch (a filtered-away event still travels, as an empty transaction or heartbeat, so
/// the applied position advances).
pub fn filter_and_rename<'a>(
    spec: &TaskSpec,
    tables: &mut TableMap,
    event: Event<'a>,
) -> Result<Event<'a>, serde_json::Error> {
    let dml = &spec.incremental.dml;
    let keep = |op: ChangeOp| match op {
        ChangeOp::Insert => dml.insert,
        ChangeOp::Update => dml.update,
        ChangeOp::Delete => dml.delete,
    };
    Ok(match event {
        Event::Transaction(mut txn) => {
            txn.changes.retain(|c| keep(c.op));
            tables.map(&mut txn, |t| spec.renames.target_of(t))?;
            Event::Transaction(txn)
        }
        Event::Typed(CdcEvent::Transaction(mut txn)) => {
            txn.changes.retain(|c| keep(c.op));
            for tv in &mut txn.tables {
                tv.table = spec.renames.target_of(&tv.table);
            }
            Event::Typed(CdcEvent::Transaction(txn))
        }
        Event::Typed(CdcEvent::Ddl(ddl)) if !spec.incremental.ddl => {
            Event::Typed(CdcEvent::Heartbeat(ferry_schemas::cdc::Heartbeat { source_time: ddl.committed_at }))
        }
        other => other,
    })
}

/// A key column's value as causality compares it: `None` for NULL (NULLs never collide in a
/// unique key), a string lower-cased and without trailing spaces, anything else as its JSON
/// text. A value read as a JSON tree and the same value kept as text compare equal.
pub trait KeyValue {
    fn key_text(&self) -> Option<Cow<'_, str>>;
}

fn folded(s: &str) -> String {
    s.trim_end_matches(' ').to_lowercase()
}

impl KeyValue for Json {
    fn key_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Json::Null => None,
            Json::String(s) => Some(Cow::Owned(folded(s))),
            v => Some(Cow::Owned(v.to_string())),
        }
    }
}

impl KeyValue for &RawValue {
    fn key_text(&self) -> Option<Cow<'_, str>> {
        let text = self.get();
        if text == "null" {
            return None;
        }
        if text.starts_with('"') {
            // Valid JSON (it was read as such); escapes resolved before folding.
            let s: Cow<str> = serde_json::from_str(text).unwrap_or(Cow::Borrowed(text));
            return Some(Cow::Owned(folded(&s)));
        }
        Some(Cow::Borrowed(text))
    }
}

/// A row change as causality reads it.
pub trait KeyedChange {
    type Value: KeyValue;
    fn table(&self) -> u32;
    fn images(&self) -> [Option<&[Self::Value]>; 2];
}

impl KeyedChange for RowChange {
    type Value = Json;
    fn table(&self) -> u32 {
        self.table
    }
    fn images(&self) -> [Option<&[Json]>; 2] {
        [self.before.as_deref(), self.after.as_deref()]
    }
}

impl<'a> KeyedChange for RawChange<'a> {
    type Value = &'a RawValue;
    fn table(&self) -> u32 {
        self.table
    }
    fn images(&self) -> [Option<&[&'a RawValue]>; 2] {
        [self.before.as_deref(), self.after.as_deref()]
    }
}

/// A transaction as causality reads it.
pub trait KeyedTransaction {
    type Change: KeyedChange;
    fn tables(&self) -> &[TableVersion];
    fn changes(&self) -> &[Self::Change];
    fn is_split(&self) -> bool;
}

impl KeyedTransaction for Transaction {
    type Change = RowChange;
    fn tables(&self) -> &[TableVersion] {
        &self.tables
    }
    fn changes(&self) -> &[RowChange] {
        &self.changes
    }
    fn is_split(&self) -> bool {
        Transaction::is_split(self)
    }
}

/// Read after [`filter_and_rename`] (before, it lists no tables and is routed as a barrier).
impl<'a> KeyedTransaction for RawTransaction<'a> {
    type Change = RawChange<'a>;
    fn tables(&self) -> &[TableVersion] {
        self.table_versions()
    }
    fn changes(&self) -> &[RawChange<'a>] {
        &self.changes
    }
    fn is_split(&self) -> bool {
        RawTransaction::is_split(self)
    }
}

/// Hashes of every key a change touches.
fn change_keys<C: KeyedChange>(tv: &TableVersion, change: &C, out: &mut Vec<u64>) {
    let mut key_sets: Vec<&Vec<String>> = Vec::new();
    if !tv.key.is_empty() {
        key_sets.push(&tv.key);
    }
    for u in &tv.unique_keys {
        if !key_sets.contains(&u) {
            key_sets.push(u);
        }
    }
    if key_sets.is_empty() {
        // A keyless table: all its changes keep their order.
        let mut h = DefaultHasher::new();
        tv.table.hash(&mut h);
        out.push(h.finish());
        return;
    }
    for image in change.images().into_iter().flatten() {
        for cols in &key_sets {
            let mut h = DefaultHasher::new();
            tv.table.hash(&mut h);
            cols.hash(&mut h);
            let mut complete = true;
            for name in cols.iter() {
                let text = tv.columns.iter().position(|c| &c.name == name).and_then(|idx| image.get(idx));
                match text.and_then(KeyValue::key_text) {
                    Some(text) => text.as_ref().hash(&mut h),
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                out.push(h.finish());
            }
        }
    }
}

/// Every key hash of a transaction, in change order, without repeats.
pub fn transaction_keys<T: KeyedTransaction>(txn: &T) -> Vec<u64> {
    let mut out = Vec::new();
    for change in txn.changes() {
        if let Some(tv) = txn.tables().get(change.table() as usize) {
            change_keys(tv, change, &mut out);
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|k| seen.insert(*k));
    out
}

/// Whether a transaction whose keys are in flight in several partitions joins them (`after`
/// dependencies) instead of becoming a barrier. On: a barrier runs alone after every lane
/// drained, and while the sink lags (catch-up) nearly every multi-row transaction of a random
/// workload has keys in flight in two lanes, so barriers serialized the apply. Measured on
/// bench/cdc (4 x 100k, 200k changes): catch-up 6,906 -> 15,302 rows/s, steady lag p99
/// 237 s -> 0.21 s. It was off while the sink's barrier readiness ignored naked partition
/// messages (fixed since); the fault test passed 3 of 3 runs with it on.
pub const JOIN_PARTITIONS: bool = true;

/// A message of another partition a transaction must follow.
pub type Join = ferry_schemas::cdc::After;

/// Transactions dispatched and not yet applied beyond which the sink is catching up (see
/// [`Causality::route`]).
pub const CATCH_UP_BACKLOG: u64 = 4096;

/// Keys in flight: which partition holds each, and the APPLY sequence that last touched it.
#[derive(Default)]
pub struct Causality {
    inflight: HashMap<u64, (u32, u64)>,
    /// Partition of the last transaction routed.
    last: u32,
}

impl Causality {
    /// Chooses the partition (`None`: barrier) of the event to be published at `apply_seq`;
    /// `applied_below` is the first APPLY sequence not yet applied by the sink. The joins are
    /// the other partitions holding its keys, each with the APPLY sequence of the last message
    /// there that touched one of them: it applies after those, not after everything queued
    /// in those lanes.
    ///
    /// A transaction none of whose keys is in flight goes to the partition its first key
    /// hashes to, except while the sink is catching up (more than [`CATCH_UP_BACKLOG`]
    /// transactions dispatched and not applied): then it stays in the partition of the
    /// transaction before it. With the whole backlog in flight nearly every transaction has
    /// a key in some lane, and the few spread elsewhere became join points: a later
    /// transaction touching one of their keys and one of the busy lane's waited for the other
    /// lane's commit, cutting the busy lane's groups to ~64 transactions. Measured on
    /// bench/cdc (4 x 250k rows, 500k changes, 8 partitions): catch-up 42,808 rows/s in
    /// groups of 63 transactions spreading, 48,450 rows/s in groups of 144 staying (one
    /// partition: 49,950). The sink's `fan_out` spreads such large groups over connections
    /// for a target with cores to spare.
    pub fn route(
        &mut self,
        event: &Event,
        partitions: u32,
        apply_seq: u64,
        applied_below: u64,
    ) -> (Option<u32>, Vec<Join>) {
        let backlog = apply_seq.saturating_sub(applied_below);
        let route = self.plan(event, partitions, apply_seq, applied_below, backlog, None);
        self.commit(&route, apply_seq);
        (route.partition, route.joins)
    }

    /// [`Causality::route`] without recording anything: `apply_seq` is the sequence a new
    /// message would get, `backlog` the transactions dispatched and not applied, `prefer` the
    /// partition of the message being filled (a transaction with nothing to order by goes
    /// there). [`Causality::commit`] then records the keys with the sequence of the message the
    /// transaction actually goes into.
    pub fn plan(
        &self,
        event: &Event,
        partitions: u32,
        apply_seq: u64,
        applied_below: u64,
        backlog: u64,
        prefer: Option<u32>,
    ) -> Route {
        let at = Position { apply_seq, applied_below, catching_up: backlog > CATCH_UP_BACKLOG };
        match event {
            Event::Transaction(txn) => self.plan_transaction(txn, partitions, at, prefer),
            Event::Typed(CdcEvent::Transaction(txn)) => self.plan_transaction(txn, partitions, at, prefer),
            Event::Typed(_) => Route::barrier(),
        }
    }

    /// Records a planned transaction's keys as last touched by the message at `apply_seq`.
    pub fn commit(&mut self, route: &Route, apply_seq: u64) {
        let Some(partition) = route.partition else { return };
        self.last = partition;
        for k in &route.keys {
            self.inflight.insert(*k, (partition, apply_seq));
        }
    }

    fn plan_transaction<T: KeyedTransaction>(
        &self,
        txn: &T,
        partitions: u32,
        at: Position,
        prefer: Option<u32>,
    ) -> Route {
        let Position { apply_seq, applied_below, catching_up } = at;
        if txn.is_split() {
            return Route::barrier();
        }
        if txn.changes().is_empty() {
            // Nothing to order against: any lane will do; it carries the position forward.
            let partition = prefer.unwrap_or((apply_seq % u64::from(partitions.max(1))) as u32);
            return Route { partition: Some(partition), joins: Vec::new(), keys: Vec::new() };
        }
        if txn.changes().iter().any(|c| txn.tables().get(c.table() as usize).is_none()) {
            // A change whose table is not listed (or not read yet: see `filter_and_rename`)
            // has no keys to order by: a barrier keeps it in order with everything.
            return Route::barrier();
        }
        let keys = transaction_keys(txn);
        // Partition -> the newest in-flight message there that touched one of the keys.
        let mut busy: BTreeMap<u32, u64> = BTreeMap::new();
        for (p, seq) in
            keys.iter().filter_map(|k| self.inflight.get(k)).filter(|(_, seq)| *seq >= applied_below)
        {
            let e = busy.entry(*p).or_insert(*seq);
            *e = (*e).max(*seq);
        }
        let partition = match busy.keys().next() {
            None if catching_up => self.last % partitions.max(1),
            None => keys.first().map_or(0, |k| (k % u64::from(partitions.max(1))) as u32),
            Some(p) => *p,
        };
        if busy.len() > 1 && !JOIN_PARTITIONS {
            // A barrier: it runs after everything before it, alone.
            return Route::barrier();
        }
        let joins: Vec<Join> = busy
            .into_iter()
            .filter(|(p, _)| *p != partition)
            .map(|(partition, seq)| Join { partition, seq })
            .collect();
        Route { partition: Some(partition), joins, keys }
    }

    /// Forgets keys whose last change has been applied.
    pub fn prune(&mut self, applied_below: u64) {
        self.inflight.retain(|_, (_, seq)| *seq >= applied_below);
    }

    pub fn len(&self) -> usize {
        self.inflight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }
}

/// Where dispatch stands when a transaction is planned.
#[derive(Clone, Copy)]
struct Position {
    apply_seq: u64,
    applied_below: u64,
    catching_up: bool,
}

/// Where [`Causality::plan`] sends a transaction.
#[derive(Debug)]
pub struct Route {
    /// `None`: a barrier.
    pub partition: Option<u32>,
    /// Messages of other partitions it must follow.
    pub joins: Vec<Join>,
    /// Its keys, recorded by [`Causality::commit`].
    keys: Vec<u64>,
}

impl Route {
    fn barrier() -> Self {
        Self { partition: None, joins: Vec::new(), keys: Vec::new() }
    }
}

/// The order constraints of the messages one dispatcher run publishes (see `ApplyEvent`).
pub struct Chain {
    last_in_partition: Vec<u64>,
    last_barrier: u64,
}

impl Chain {
    pub fn new(partitions: u32) -> Self {
        Self { last_in_partition: vec![0; partitions.max(1) as usize], last_barrier: 0 }
    }

    /// A chain that goes on after the barrier at `apply_seq` (a restart in the middle of a
    /// split transaction: its next part follows the parts already published).
    pub fn after_barrier(partitions: u32, apply_seq: u64) -> Self {
        Self { last_barrier: apply_seq, ..Self::new(partitions) }
    }

    /// The place in the chain of the APPLY message published at `apply_seq` to `partition`
    /// (`None`: a barrier), after the `joins` (messages of other partitions that touched its
    /// keys).
    pub fn link(&mut self, apply_seq: u64, partition: Option<u32>, joins: &[Join]) -> Links {
        let prev_barrier_seq = self.last_barrier;
        let n = self.last_in_partition.len();
        match partition {
            Some(p) => {
                let slot = &mut self.last_in_partition[p as usize % n];
                Links {
                    prev_partition_seq: std::mem::replace(slot, apply_seq),
                    prev_barrier_seq,
                    partition_last: Vec::new(),
                    after: joins.iter().copied().filter(|a| a.seq > 0).collect(),
                }
            }
            None => {
                self.last_barrier = apply_seq;
                Links {
                    prev_partition_seq: 0,
                    prev_barrier_seq,
                    partition_last: self.last_in_partition.clone(),
                    after: Vec::new(),
                }
            }
        }
    }
}

/// The order fields of one APPLY message (see `ferry_schemas::cdc::ApplyEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    pub prev_partition_seq: u64,
    pub prev_barrier_seq: u64,
    pub partition_last: Vec<u64>,
    pub after: Vec<Join>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use ferry_schemas::full::BatchColumn;
    use ferry_schemas::table::TableRef;
    use ferry_schemas::value::ColumnType;
    use serde_json::json;

    fn table() -> TableVersion {
        let col = |n: &str| BatchColumn {
            name: n.into(),
            column_type: ColumnType::Int { bytes: 4, unsigned: false },
        };
        TableVersion {
            table: TableRef::new("d", "t"),
            version: 1,
            columns: vec![col("id"), col("u")],
            key: vec!["id".into()],
            unique_keys: vec![vec!["id".into()], vec!["u".into()]],
            generated: vec![],
        }
    }

    fn txn(changes: Vec<RowChange>) -> Event<'static> {
        Event::Typed(CdcEvent::Transaction(Transaction {
            gtid: None,
            committed_at: Utc::now(),
            part: 0,
            last_part: true,
            begin: None,
            tables: vec![table()],
            changes,
        }))
    }

    fn insert(id: i64, u: Json) -> RowChange {
        RowChange { table: 0, op: ChangeOp::Insert, before: None, after: Some(vec![json!(id), u]) }
    }

    #[test]
    fn same_key_stays_in_one_partition_while_in_flight() {
        let mut c = Causality::default();
        let p1 = c.route(&txn(vec![insert(1, json!(10))]), 8, 1, 1).0;
        let upd = RowChange {
            table: 0,
            op: ChangeOp::Update,
            before: Some(vec![json!(1), json!(10)]),
            after: Some(vec![json!(1), json!(11)]),
        };
        assert_eq!(c.route(&txn(vec![upd]), 8, 2, 1).0, p1);
    }

    #[test]
    fn a_unique_key_links_rows_with_different_primary_keys() {
        let mut c = Causality::default();
        let p1 = c.route(&txn(vec![insert(1, json!(7))]), 64, 1, 1).0;
        // Another row takes the same unique value: must follow the first.
        assert_eq!(c.route(&txn(vec![insert(2, json!(7))]), 64, 2, 1), (p1, vec![]));
    }

    #[test]
    fn keys_in_flight_in_two_partitions_join_or_make_a_barrier() {
        let mut c = Causality::default();
        let mut seq = 0;
        let mut parts = HashMap::new();
        for id in 0..64 {
            seq += 1;
            parts.insert(id, c.route(&txn(vec![insert(id, json!(null))]), 4, seq, 1).0);
        }
        let (a, b) = (0..64)
            .flat_map(|x| (0..64).map(move |y| (x, y)))
            .find(|(x, y)| parts[x] != parts[y])
            .expect("two partitions");
        let both = txn(vec![insert(a, json!(null)), insert(b, json!(null))]);
        let (p, joins) = c.route(&both, 4, seq + 1, 1);
        if JOIN_PARTITIONS {
            let (pa, pb) = (parts[&a].expect("lane"), parts[&b].expect("lane"));
            // It follows exactly the message that wrote the other key, not its lane's newest.
            let (sa, sb) = (a as u64 + 1, b as u64 + 1);
            assert!(
                p == Some(pa) && joins == vec![Join { partition: pb, seq: sb }]
                    || p == Some(pb) && joins == vec![Join { partition: pa, seq: sa }],
                "{p:?} {joins:?}"
            );
        } else {
            assert_eq!((p, joins), (None, vec![]));
        }
        // Once everything before is applied, the same transaction joins nothing.
        assert!(c.route(&both, 4, seq + 2, seq + 2).1.is_empty());
    }

    #[test]
    fn every_part_of_a_split_transaction_is_a_barrier() {
        let mut c = Causality::default();
        for (part, last_part) in [(0, false), (1, false), (2, true)] {
            let mut event = txn(vec![insert(i64::from(part), json!(null))]);
            if let Event::Typed(CdcEvent::Transaction(t)) = &mut event {
                t.part = part;
                t.last_part = last_part;
            }
            assert_eq!(c.route(&event, 8, u64::from(part) + 1, 1), (None, vec![]), "part {part}");
        }
        // A whole transaction is routed by its keys.
        assert!(c.route(&txn(vec![insert(7, json!(null))]), 8, 4, 1).0.is_some());
        let mut chain = Chain::after_barrier(8, 3);
        let next = chain.link(4, None, &[]);
        assert_eq!(next.prev_barrier_seq, 3);
    }

    #[test]
    fn while_catching_up_transactions_without_keys_in_flight_stay_together() {
        let mut c = Causality::default();
        let floor = 1;
        let mut seq = CATCH_UP_BACKLOG + floor;
        let mut lanes = std::collections::HashSet::new();
        for id in 0..64 {
            seq += 1;
            let (p, joins) = c.route(&txn(vec![insert(id, json!(null))]), 8, seq, floor);
            assert!(joins.is_empty());
            lanes.insert(p);
        }
        assert_eq!(lanes.len(), 1, "spread over {lanes:?}");
        // Keys in flight elsewhere still decide, with joins; once the sink has caught up,
        // fresh keys spread again.
        let mut spread = std::collections::HashSet::new();
        for id in 100..164 {
            seq += 1;
            spread.insert(c.route(&txn(vec![insert(id, json!(null))]), 8, seq, seq - 10).0);
        }
        assert!(spread.len() > 1, "not spread: {spread:?}");
    }

    #[test]
    fn applied_keys_are_forgotten() {
        let mut c = Causality::default();
        c.route(&txn(vec![insert(1, json!(1))]), 8, 1, 1);
        c.prune(2);
        assert!(c.is_empty());
    }

    #[test]
    fn a_transaction_kept_as_text_has_the_keys_of_its_typed_self() {
        let mut tv = table();
        tv.unique_keys.push(vec!["u".into(), "id".into()]);
        let typed = Transaction {
            gtid: None,
            committed_at: Utc::now(),
            part: 0,
            last_part: true,
            begin: None,
            tables: vec![tv],
            changes: vec![
                insert(1, json!("Ab\"cÉ  ")),
                insert(-2, json!(null)),
                RowChange {
                    table: 0,
                    op: ChangeOp::Update,
                    before: Some(vec![json!(u64::MAX), json!(1.5)]),
                    after: Some(vec![json!(3), json!("x\ny")]),
                },
            ],
        };
        let text = serde_json::to_string(&CdcEvent::Transaction(typed.clone())).unwrap();
        let Event::Transaction(mut raw) = serde_json::from_str::<Event>(&text).unwrap() else {
            panic!("not read as text: {text}")
        };
        TableMap::default().map(&mut raw, TableRef::clone).unwrap();
        let keys = transaction_keys(&typed);
        assert_eq!(transaction_keys(&raw), keys);
        // Three key sets (id; u; u, id) per image, but none with a NULL column.
        assert_eq!(keys.len(), 3 + 1 + 3 + 3, "{keys:?}");
    }

    #[test]
    fn a_transaction_whose_tables_are_unknown_is_a_barrier() {
        let mut c = Causality::default();
        let text = match txn(vec![insert(1, json!(1))]) {
            Event::Typed(e) => serde_json::to_string(&e).unwrap(),
            Event::Transaction(_) => unreachable!(),
        };
        // Read but not mapped: its tables are not known yet.
        let raw: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(c.route(&raw, 8, 1, 1), (None, vec![]));
        // A change naming a table the message does not list.
        let mut bad = txn(vec![insert(1, json!(1))]);
        if let Event::Typed(CdcEvent::Transaction(t)) = &mut bad {
            t.changes[0].table = 3;
        }
        assert_eq!(c.route(&bad, 8, 2, 1), (None, vec![]));
    }

    #[test]
    fn strings_compare_case_and_pad_insensitively() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut tv = table();
        tv.key = vec!["u".into()];
        tv.unique_keys.clear();
        change_keys(&tv, &insert(1, json!("Abc  ")), &mut a);
        change_keys(&tv, &insert(2, json!("abc")), &mut b);
        assert_eq!(a, b);
    }
}
