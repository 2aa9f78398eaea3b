//! The net effect of a group of transactions on keyed tables, as a few multi-row statements.
//!
//! The sink commits a group of consecutive transactions of one lane as one target transaction,
//! so only the group's end state is ever visible on the target. Per table and key, what the
//! group does reduces to: was the row there before the group (its first change is an update or
//! a delete), and what is its image at the end (none if deleted). That becomes one
//! `DELETE ... WHERE key IN (...)` of the rows that were there, which must delete exactly that
//! many (fewer means the target lost a row: it diverged), then one multi-row `INSERT` of the
//! end images, where a duplicate key means the target has a row the source did not. Rows that
//! were there and end changed, in a table with no unique key but the one rows are found by,
//! are rewritten in place by one multi-row `REPLACE` instead, whose count must be exactly two
//! per row (see [`TablePlan::emit`]). A statement per row change cost ~60 us of target CPU per
//! row; multi-row statements cost a fraction of that, and every check of the row-by-row plan
//! keeps an exact counterpart.
//!
//! Reordering is safe because the sink runs with `foreign_key_checks = 0` and the rows of one
//! key keep their order. Anything this cannot express exactly (a keyless table, a table whose
//! shape changes inside the group, a change that contradicts the rows before it, a NULL key
//! value) returns `None` and the group is planned row by row. A divergence found here is
//! planned again row by row by the caller, so the report names the exact transaction.

use super::rows::{column_values, write_checked_rows, write_rows, RowError, Shape, ROWS_PER_STATEMENT};
use super::script::{Check, Script};
use ferry_schemas::cdc::{ChangeOp, RowChange, Transaction};
use ferry_schemas::literal::push_literal;
use ferry_schemas::table::{quote_ident, TableRef};
use ferry_schemas::value::SqlValue;
use std::collections::HashMap;

/// One key's fate inside the group.
struct KeyState {
    /// The row as it was before the group, when it existed (its first change read it).
    first: Option<Vec<SqlValue>>,
    /// The written columns at the end of the group; `None`: absent.
    end: Option<Vec<SqlValue>>,
}

impl KeyState {
    fn existed(&self) -> bool {
        self.first.is_some()
    }
}

struct TablePlan<'a> {
    /// Index among the group's tables.
    slot: usize,
    shape: Shape<'a>,
    /// Per change, the identities of every key value it touches (see [`plan_parts`]).
    links: Vec<Vec<String>>,
    /// Keys as SQL literal tuples, in order of first appearance.
    order: Vec<String>,
    keys: HashMap<String, KeyState>,
}

/// Appends the net effect of `group` to `script`. Returns the rows changed by each
/// transaction, or `None` when the group must be planned row by row.
pub fn plan_group(script: &mut Script, group: &[&Transaction]) -> Result<Option<Vec<u64>>, RowError> {
    let Some(tables) = fold(group)? else { return Ok(None) };
    for plan in &tables {
        plan.emit(script, |_| true);
    }
    Ok(Some(rows_of(group)))
}

/// Scripts that may run at once on separate connections, and the rows changed by each
/// transaction of the group.
pub type Parts = (Vec<Script>, Vec<u64>);

/// The net effect of `group` split into up to `max_parts` scripts that touch disjoint rows, so
/// they can run on separate connections at once (a row whose key changes stays in one part
/// with both keys). `None` when the group must be planned row by row, does not split into two
/// parts, or changes a table with a unique key besides the primary key: InnoDB checks a unique
/// secondary index for duplicates under next-key locks even in READ COMMITTED, so parts with
/// disjoint rows still wait on each other's gaps, and a part waiting for another that waits for
/// the common commit is a deadlock InnoDB cannot see (the e2e workload hit 50 s lock wait
/// timeouts on `accounts.email`). Primary-key checks lock only the record.
pub fn plan_parts(group: &[&Transaction], max_parts: usize) -> Result<Option<Parts>, RowError> {
    let Some(tables) = fold(group)? else { return Ok(None) };
    if tables.iter().any(|t| t.shape.other_unique_keys()) {
        return Ok(None);
    }
    let mut sets = KeySets::default();
    for plan in &tables {
        for ids in &plan.links {
            sets.join(ids);
        }
    }
    let mut part_of: HashMap<usize, usize> = HashMap::new();
    let mut assigned: Vec<HashMap<&String, usize>> = Vec::with_capacity(tables.len());
    for plan in &tables {
        let mut parts = HashMap::new();
        for k in &plan.order {
            let root = sets.root(&identity(plan.slot, k));
            let next = part_of.len() % max_parts.max(1);
            parts.insert(k, *part_of.entry(root).or_insert(next));
        }
        assigned.push(parts);
    }
    let count = part_of.len().min(max_parts);
    if count < 2 {
        return Ok(None);
    }
    let mut scripts: Vec<Script> = (0..count).map(|_| Script::default()).collect();
    for (part, script) in scripts.iter_mut().enumerate() {
        for (plan, parts) in tables.iter().zip(&assigned) {
            plan.emit(script, |k| parts.get(k) == Some(&part));
        }
    }
    Ok(Some((scripts, rows_of(group))))
}

fn rows_of(group: &[&Transaction]) -> Vec<u64> {
    group.iter().map(|t| t.changes.len() as u64).collect()
}

/// A key value as compared for the split: lower-cased and without trailing spaces, since the
/// target's collation may take such values as equal (it only ever merges parts, never splits
/// rows that collide).
fn identity(slot: usize, literal: &str) -> String {
    format!("{slot}/{}", literal.trim_end_matches(' ').to_lowercase())
}

/// Disjoint sets of key identities (union-find).
#[derive(Default)]
struct KeySets {
    ids: HashMap<String, usize>,
    parent: Vec<usize>,
}

impl KeySets {
    fn id(&mut self, identity: &str) -> usize {
        if let Some(i) = self.ids.get(identity) {
            return *i;
        }
        let i = self.parent.len();
        self.parent.push(i);
        self.ids.insert(identity.to_owned(), i);
        i
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn join(&mut self, identities: &[String]) {
        let Some(first) = identities.first() else { return };
        let a = self.id(first);
        for other in &identities[1..] {
            let b = self.id(other);
            let (ra, rb) = (self.find(a), self.find(b));
            self.parent[rb] = ra;
        }
    }

    fn root(&mut self, identity: &str) -> usize {
        let i = self.id(identity);
        self.find(i)
    }
}

/// The group folded per table and key; `None` when it must be planned row by row.
fn fold<'a>(group: &[&'a Transaction]) -> Result<Option<Vec<TablePlan<'a>>>, RowError> {
    let mut tables: Vec<TablePlan<'_>> = Vec::new();
    let mut index: HashMap<&TableRef, usize> = HashMap::new();
    for txn in group {
        for change in &txn.changes {
            let Some(tv) = txn.tables.get(change.table as usize) else { return Ok(None) };
            let slot = match index.get(&tv.table) {
                Some(i) => *i,
                None => {
                    let shape = Shape::new(tv);
                    if shape.keyless {
                        return Ok(None);
                    }
                    index.insert(&tv.table, tables.len());
                    let slot = tables.len();
                    tables.push(TablePlan {
                        slot,
                        shape,
                        links: Vec::new(),
                        order: Vec::new(),
                        keys: HashMap::new(),
                    });
                    tables.len() - 1
                }
            };
            let plan = &mut tables[slot];
            let same_shape = plan.shape.tv.columns == tv.columns && plan.shape.tv.key == tv.key;
            if !same_shape || !plan.apply(change)? {
                return Ok(None);
            }
        }
    }
    Ok(Some(tables))
}

impl TablePlan<'_> {
    /// Folds one change into the key states; false when it contradicts them.
    fn apply(&mut self, change: &RowChange) -> Result<bool, RowError> {
        let before = match change.op {
            ChangeOp::Insert => None,
            ChangeOp::Update | ChangeOp::Delete => Some(self.row(change, false)?),
        };
        let after = match change.op {
            ChangeOp::Delete => None,
            ChangeOp::Insert | ChangeOp::Update => Some(self.row(change, true)?),
        };
        let (Some(before_key), Some(after_key)) =
            (self.usable_key(before.as_ref()), self.usable_key(after.as_ref()))
        else {
            return Ok(false);
        };
        let mut ids = Vec::new();
        for image in [before.as_deref(), after.as_deref()].into_iter().flatten() {
            self.identities(image, &mut ids);
        }
        self.links.push(ids);
        if let Some(k) = before_key {
            // The row must be there: before the group, or written earlier in it.
            match self.keys.get_mut(&k) {
                Some(KeyState { end, .. }) if end.is_some() => *end = None,
                Some(_) => return Ok(false),
                None => {
                    self.order.push(k.clone());
                    self.keys.insert(k, KeyState { first: before, end: None });
                }
            }
        }
        if let (Some(k), Some(row)) = (after_key, after) {
            let written: Vec<SqlValue> = self.shape.write.iter().map(|i| row[*i].clone()).collect();
            // The key must be free: absent before the group, or removed earlier in it.
            match self.keys.get_mut(&k) {
                Some(KeyState { end: Some(_), .. }) => return Ok(false),
                Some(state) => state.end = Some(written),
                None => {
                    self.order.push(k.clone());
                    self.keys.insert(k, KeyState { first: None, end: Some(written) });
                }
            }
        }
        Ok(true)
    }

    fn row(&self, change: &RowChange, after: bool) -> Result<Vec<SqlValue>, RowError> {
        column_values(self.shape.tv, change, after)
    }

    /// The key of an image if there is one: `Some(None)` without an image, `None` when the
    /// key cannot be used.
    fn usable_key(&self, row: Option<&Vec<SqlValue>>) -> Option<Option<String>> {
        match row {
            None => Some(None),
            Some(r) => self.key(r).map(Some),
        }
    }

    /// The key as a literal tuple `(v1, v2)`; `None` for a NULL part (not a key IN can find).
    fn key(&self, row: &[SqlValue]) -> Option<String> {
        let mut out = String::from("(");
        for (n, i) in self.shape.find.iter().enumerate() {
            let v = &row[*i];
            if matches!(v, SqlValue::Null) {
                return None;
            }
            if n > 0 {
                out.push_str(", ");
            }
            push_literal(&mut out, v);
        }
        out.push(')');
        Some(out)
    }

    /// The identity of an image's key, for [`plan_parts`].
    fn identities(&self, row: &[SqlValue], out: &mut Vec<String>) {
        if let Some(k) = self.key(row) {
            out.push(identity(self.slot, &k));
        }
    }

    /// Whether the key's row existed and ends the group changed (see [`TablePlan::emit`]).
    fn changed(&self, state: &KeyState) -> bool {
        match (&state.first, &state.end) {
            (Some(first), Some(end)) => {
                self.shape.write.iter().zip(end).any(|(i, v)| first.get(*i) != Some(v))
            }
            _ => false,
        }
    }

    /// Appends the statements for the keys `keep` selects: rows that existed and are gone are
    /// deleted, rows that existed and changed are rewritten with `REPLACE`, and the other end
    /// images are inserted (an existing row whose end equals its start is deleted and inserted
    /// again, which checks it is there).
    ///
    /// `REPLACE` of a row the table finds by its only unique key updates it in place: on
    /// sysbench rows it cost the target ~12-15 us of CPU per row where DELETE + INSERT cost
    /// ~22 us. Its count keeps the check: a changed row counts 2 (deleted and inserted), a
    /// missing one (the target diverged) or one already holding its end image counts 1, and
    /// with no other unique key it cannot remove any other row; so anything but exactly 2 per
    /// row rolls the group back and it is planned row by row, which tells the two apart.
    fn emit(&self, script: &mut Script, keep: impl Fn(&String) -> bool) {
        let table = &self.shape.tv.table;
        let mine: Vec<&String> = self.order.iter().filter(|k| keep(k)).collect();
        // With another unique key a REPLACE could remove a second row: DELETE + INSERT only.
        let in_place = !self.shape.other_unique_keys();
        let (rewrite, mine): (Vec<&String>, Vec<&String>) =
            mine.into_iter().partition(|k| in_place && self.changed(&self.keys[*k]));
        let existed: Vec<&String> = mine.iter().copied().filter(|k| self.keys[*k].existed()).collect();
        let columns: Vec<String> =
            self.shape.find.iter().map(|i| quote_ident(&self.shape.tv.columns[*i].name)).collect();
        let head = format!("DELETE FROM {} WHERE ({}) IN (", table.quoted(), columns.join(", "));
        for chunk in existed.chunks(ROWS_PER_STATEMENT) {
            let mut sql = head.clone();
            for (n, k) in chunk.iter().enumerate() {
                if n > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(k);
            }
            sql.push(')');
            let how = format!("of {} row(s) changed in {table}, some are not in the target", chunk.len());
            script.push(&sql, format!("DELETE FROM {table}"), Check::Exactly(chunk.len() as u64, how));
        }
        let rows: Vec<Vec<SqlValue>> = rewrite.iter().filter_map(|k| self.keys[*k].end.clone()).collect();
        write_checked_rows(script, &self.shape, "REPLACE", &rows, |n| {
            Check::Exactly(
                2 * n as u64,
                format!("of {n} row(s) rewritten in {table}, some are not in the target or already hold their new values"),
            )
        });
        let rows: Vec<Vec<SqlValue>> = mine.iter().filter_map(|k| self.keys[*k].end.clone()).collect();
        write_rows(script, &self.shape, "INSERT", &rows, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use ferry_schemas::cdc::TableVersion;
    use ferry_schemas::full::BatchColumn;
    use ferry_schemas::value::ColumnType;
    use serde_json::{json, Value as Json};

    fn table(name: &str, key: &[&str]) -> TableVersion {
        let col = |n: &str| BatchColumn {
            name: n.into(),
            column_type: ColumnType::Int { bytes: 4, unsigned: false },
        };
        TableVersion {
            table: TableRef::new("d", name),
            version: 1,
            columns: vec![col("id"), col("u"), col("v")],
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            unique_keys: vec![],
            generated: vec![],
        }
    }

    fn change(op: ChangeOp, table: u32, before: Option<Json>, after: Option<Json>) -> RowChange {
        let img = |v: Json| v.as_array().cloned();
        RowChange { table, op, before: before.and_then(img), after: after.and_then(img) }
    }

    fn txn(tables: Vec<TableVersion>, changes: Vec<RowChange>) -> Transaction {
        Transaction {
            gtid: None,
            committed_at: Utc::now(),
            part: 0,
            last_part: true,
            begin: None,
            tables,
            changes,
        }
    }

    fn plan(group: &[Transaction]) -> Option<(String, Vec<u64>, Script)> {
        let mut script = Script::default();
        let refs: Vec<&Transaction> = group.iter().collect();
        let rows = plan_group(&mut script, &refs).ok()??;
        Some((script.sql().to_owned(), rows, script))
    }

    #[test]
    fn a_group_becomes_one_delete_one_replace_and_one_insert_per_table() {
        let t = || vec![table("t", &["id"])];
        // The sysbench shape: two updates, a delete and an insert of the deleted key; then a
        // second transaction updates a row the first inserted and moves another's key.
        let first = txn(
            t(),
            vec![
                change(ChangeOp::Update, 0, Some(json!([1, 1, 1])), Some(json!([1, 2, 1]))),
                change(ChangeOp::Update, 0, Some(json!([2, 1, 1])), Some(json!([2, 1, 9]))),
                change(ChangeOp::Delete, 0, Some(json!([3, 1, 1])), None),
                change(ChangeOp::Insert, 0, None, Some(json!([3, 5, 5]))),
                change(ChangeOp::Insert, 0, None, Some(json!([4, 4, 4]))),
            ],
        );
        let second = txn(
            t(),
            vec![
                change(ChangeOp::Update, 0, Some(json!([4, 4, 4])), Some(json!([4, 4, 7]))),
                change(ChangeOp::Update, 0, Some(json!([1, 2, 1])), Some(json!([10, 2, 1]))),
                change(ChangeOp::Insert, 0, None, Some(json!([5, 5, 5]))),
                change(ChangeOp::Delete, 0, Some(json!([5, 5, 5])), None),
                // Changed and changed back: deleted and inserted, so its presence is checked.
                change(ChangeOp::Update, 0, Some(json!([6, 1, 1])), Some(json!([6, 1, 2]))),
                change(ChangeOp::Update, 0, Some(json!([6, 1, 2])), Some(json!([6, 1, 1]))),
            ],
        );
        let group = [first, second];
        let (sql, rows, script) = plan(&group).expect("planned");
        assert_eq!(rows, vec![5, 6]);
        assert_eq!(
            sql,
            "DELETE FROM `d`.`t` WHERE (`id`) IN ((1), (6));\n\
             REPLACE INTO `d`.`t` (`id`, `u`, `v`) VALUES (2, 1, 9), (3, 5, 5);\n\
             INSERT INTO `d`.`t` (`id`, `u`, `v`) VALUES (4, 4, 7), (10, 2, 1), (6, 1, 1)"
        );
        let checks = script.checks();
        assert!(matches!(checks[0], Check::Exactly(2, _)), "{:?}", checks[0]);
        assert!(matches!(checks[1], Check::Exactly(4, _)), "{:?}", checks[1]);
        assert!(matches!(checks[2], Check::NoDuplicate(_)), "{:?}", checks[2]);
        // A REPLACE could remove a row colliding on another unique key: such a table keeps
        // DELETE and INSERT.
        let mut unique = table("t", &["id"]);
        unique.unique_keys = vec![vec!["id".into()], vec!["u".into()]];
        let with_unique: Vec<Transaction> =
            group.iter().map(|g| Transaction { tables: vec![unique.clone()], ..g.clone() }).collect();
        let (sql, _, _) = plan(&with_unique).expect("planned");
        assert_eq!(
            sql,
            "DELETE FROM `d`.`t` WHERE (`id`) IN ((1), (2), (3), (6));\n\
             INSERT INTO `d`.`t` (`id`, `u`, `v`) VALUES (2, 1, 9), (3, 5, 5), (4, 4, 7), (10, 2, 1), (6, 1, 1)"
        );
    }

    #[test]
    fn composite_keys_and_several_tables() {
        let tables = vec![table("a", &["id", "u"]), table("b", &["id"])];
        let group = [txn(
            tables,
            vec![
                change(ChangeOp::Delete, 1, Some(json!([7, 0, 0])), None),
                change(ChangeOp::Update, 0, Some(json!([1, 2, 3])), Some(json!([1, 2, 4]))),
            ],
        )];
        let (sql, _, _) = plan(&group).expect("planned");
        assert_eq!(
            sql,
            "DELETE FROM `d`.`b` WHERE (`id`) IN ((7));\n\
             REPLACE INTO `d`.`a` (`id`, `u`, `v`) VALUES (1, 2, 4)"
        );
    }

    #[test]
    fn parts_split_rows_and_keep_a_moved_key_with_its_row() {
        let t = || vec![table("t", &["id"])];
        // Row 1 moves to key 10 and row 2 takes key 1: one part. Rows 5 and 6 on their own.
        let group = [
            txn(
                t(),
                vec![
                    change(ChangeOp::Update, 0, Some(json!([1, 0, 0])), Some(json!([10, 0, 0]))),
                    change(ChangeOp::Update, 0, Some(json!([2, 0, 0])), Some(json!([1, 0, 0]))),
                ],
            ),
            txn(
                t(),
                vec![
                    change(ChangeOp::Update, 0, Some(json!([5, 0, 0])), Some(json!([5, 0, 1]))),
                    change(ChangeOp::Delete, 0, Some(json!([6, 0, 0])), None),
                ],
            ),
        ];
        let refs: Vec<&Transaction> = group.iter().collect();
        let (scripts, rows) = plan_parts(&refs, 8).ok().flatten().expect("split");
        assert_eq!(rows, vec![2, 2]);
        let sql: Vec<String> = scripts.iter().map(|s| s.sql().to_owned()).collect();
        assert_eq!(
            sql,
            vec![
                "DELETE FROM `d`.`t` WHERE (`id`) IN ((1), (2));\n\
                 INSERT INTO `d`.`t` (`id`, `u`, `v`) VALUES (1, 0, 0), (10, 0, 0)",
                "REPLACE INTO `d`.`t` (`id`, `u`, `v`) VALUES (5, 0, 1)",
                "DELETE FROM `d`.`t` WHERE (`id`) IN ((6))",
            ]
        );
        // At most `max_parts`, and together they write what the unsplit plan writes.
        let (two, _) = plan_parts(&refs, 2).ok().flatten().expect("split");
        assert_eq!(two.len(), 2);
        assert!(two[0].sql().contains("(1), (2)") && two[0].sql().contains("(6)"), "{}", two[0].sql());
        assert!(two[1].sql().contains("(5, 0, 1)"), "{}", two[1].sql());
        // One connected group does not split.
        assert!(plan_parts(&refs[..1], 8).ok().flatten().is_none());
        // Nor does a table with a unique key besides the primary key.
        let mut unique = table("t", &["id"]);
        unique.unique_keys = vec![vec!["id".into()], vec!["u".into()]];
        let with_unique: Vec<Transaction> =
            group.iter().map(|g| Transaction { tables: vec![unique.clone()], ..g.clone() }).collect();
        let refs: Vec<&Transaction> = with_unique.iter().collect();
        assert!(plan_parts(&refs, 8).ok().flatten().is_none());
    }

    #[test]
    fn what_it_cannot_express_is_planned_row_by_row() {
        let t = || vec![table("t", &["id"])];
        // A keyless table.
        let keyless =
            txn(vec![table("t", &[])], vec![change(ChangeOp::Insert, 0, None, Some(json!([1, 1, 1])))]);
        assert!(plan(&[keyless]).is_none());
        // An insert on a key the group already wrote, an update of a key it deleted.
        let twice = txn(
            t(),
            vec![
                change(ChangeOp::Insert, 0, None, Some(json!([1, 1, 1]))),
                change(ChangeOp::Insert, 0, None, Some(json!([1, 1, 1]))),
            ],
        );
        assert!(plan(&[twice]).is_none());
        let gone = txn(
            t(),
            vec![
                change(ChangeOp::Delete, 0, Some(json!([1, 1, 1])), None),
                change(ChangeOp::Update, 0, Some(json!([1, 1, 1])), Some(json!([1, 1, 2]))),
            ],
        );
        assert!(plan(&[gone]).is_none());
        // A NULL key value.
        let null = txn(t(), vec![change(ChangeOp::Delete, 0, Some(json!([null, 1, 1])), None)]);
        assert!(plan(&[null]).is_none());
        // The table's shape changes inside the group.
        let mut wider = table("t", &["id"]);
        wider.columns.pop();
        let changed = [
            txn(t(), vec![change(ChangeOp::Insert, 0, None, Some(json!([1, 1, 1])))]),
            txn(vec![wider], vec![change(ChangeOp::Insert, 0, None, Some(json!([2, 1])))]),
        ];
        assert!(plan(&changed).is_none());
    }
}
