//! The statements the checker runs on each side: key ranges, chunk checksums, boundaries and
//! row reads. Pure text building, the same for source and target, so both sides compute the
//! checksum of the same canonical row text.
//!
//! A row's canonical text is `CONCAT_WS(0x1f, e1, .., en, nulls)` where `ei` is the column
//! (FLOAT widened to DOUBLE so every bit shows; text converted to utf8mb4 when the two sides
//! store it in different character sets) and `nulls` the `ISNULL` flags of the nullable
//! columns (CONCAT_WS skips NULLs, so without them NULL and a missing value would agree). A
//! chunk's checksum is its row count with the SUM and the BIT_XOR of the rows' CRC32 (CRC32C
//! when both servers have it): order-independent, computed inside each database, so only three
//! numbers per chunk cross the network. Equal checksums with different rows need a 32-bit CRC
//! collision; the row comparison after a mismatch is exact.

use ferry_schemas::table::quote_ident;
use ferry_schemas::value::{ColumnType, SqlValue};
use mysql_async::Value;

/// A half-open key range `(lo, hi]`; `None` is unbounded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyRange {
    pub lo: Option<Vec<SqlValue>>,
    pub hi: Option<Vec<SqlValue>>,
}

/// What the statements of one table are built from.
#[derive(Clone, Debug)]
pub struct TableSql {
    /// `` `db`.`table` `` on this side.
    pub table: String,
    /// Compared columns and their types.
    pub columns: Vec<(String, ColumnType)>,
    /// Positions of the key columns in `columns` (empty: keyless).
    pub key: Vec<usize>,
    /// Per column: convert to utf8mb4 before hashing (the sides' character sets differ).
    pub convert: Vec<bool>,
    pub nullable: Vec<bool>,
    /// `CRC32` or `CRC32C`.
    pub hash_fn: &'static str,
}

impl TableSql {
    fn key_cols(&self) -> impl Iterator<Item = &(String, ColumnType)> {
        self.key.iter().map(|&i| &self.columns[i])
    }

    fn order_by(&self) -> String {
        self.key_cols().map(|(n, _)| quote_ident(n)).collect::<Vec<_>>().join(", ")
    }

    fn select_list(&self) -> String {
        self.columns.iter().map(|(n, _)| quote_ident(n)).collect::<Vec<_>>().join(", ")
    }

    /// The CRC of a row's canonical text.
    pub fn row_hash(&self) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .zip(&self.convert)
            .map(|((name, ty), convert)| {
                let c = quote_ident(name);
                match ty {
                    ColumnType::Float => format!("({c} + 0e0)"),
                    ColumnType::Text { .. } if *convert => format!("CONVERT({c} USING utf8mb4)"),
                    _ => c,
                }
            })
            .collect();
        let nulls: Vec<String> = self
            .columns
            .iter()
            .zip(&self.nullable)
            .filter(|(_, n)| **n)
            .map(|((name, _), _)| format!("ISNULL({})", quote_ident(name)))
            .collect();
        if !nulls.is_empty() {
            parts.push(format!("CONCAT({})", nulls.join(", ")));
        }
        format!("{}(CONCAT_WS(0x1f, {}))", self.hash_fn, parts.join(", "))
    }

    /// `WHERE ...` for a range (empty when unbounded on both sides), with its parameters.
    pub fn range_where(&self, range: &KeyRange) -> (String, Vec<Value>) {
        let mut terms = Vec::new();
        let mut params = Vec::new();
        if let Some(lo) = &range.lo {
            terms.push(self.compare(lo, ">", &mut params));
        }
        if let Some(hi) = &range.hi {
            terms.push(format!("NOT {}", self.compare(hi, ">", &mut params)));
        }
        if terms.is_empty() {
            (String::new(), params)
        } else {
            (format!(" WHERE {}", terms.join(" AND ")), params)
        }
    }

    /// `(k1 > v1) OR (k1 = v1 AND k2 > v2) ...`, spelled out per column so every server uses
    /// the key's index.
    fn compare(&self, bound: &[SqlValue], op: &str, params: &mut Vec<Value>) -> String {
        let cols: Vec<&(String, ColumnType)> = self.key_cols().collect();
        let mut ors = Vec::new();
        for i in 0..cols.len() {
            let mut ands = Vec::new();
            for (j, (name, ty)) in cols.iter().enumerate().take(i) {
                ands.push(format!("{} = {}", quote_ident(name), ferry_mysql::values::placeholder(ty)));
                params.push(ferry_mysql::values::to_param(&bound[j]));
            }
            let (name, ty) = cols[i];
            ands.push(format!("{} {op} {}", quote_ident(name), ferry_mysql::values::placeholder(ty)));
            params.push(ferry_mysql::values::to_param(&bound[i]));
            ors.push(format!("({})", ands.join(" AND ")));
        }
        format!("({})", ors.join(" OR "))
    }

    /// Count, SUM and BIT_XOR of the row hashes in a range.
    pub fn checksum(&self, range: &KeyRange) -> (String, Vec<Value>) {
        let (filter, params) = self.range_where(range);
        let sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(h), 0) AS CHAR), CAST(COALESCE(BIT_XOR(h), 0) AS CHAR) \
             FROM (SELECT {} AS h FROM {}{filter}) AS ferry_rows",
            self.row_hash(),
            self.table
        );
        (sql, params)
    }

    /// The key of the `offset`-th row (0-based) of a range in key order.
    pub fn key_at(&self, range: &KeyRange, offset: u64) -> (String, Vec<Value>) {
        let (filter, params) = self.range_where(range);
        let keys: Vec<String> = self.key_cols().map(|(n, _)| quote_ident(n)).collect();
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY {} LIMIT 1 OFFSET {offset}",
            keys.join(", "),
            self.table,
            self.order_by()
        );
        (sql, params)
    }

    /// The greatest key of the table.
    pub fn last_key(&self) -> String {
        let keys: Vec<String> = self.key_cols().map(|(n, _)| quote_ident(n)).collect();
        let desc: Vec<String> = keys.iter().map(|k| format!("{k} DESC")).collect();
        format!("SELECT {} FROM {} ORDER BY {} LIMIT 1", keys.join(", "), self.table, desc.join(", "))
    }

    /// Every compared column of the rows in a range, in key order.
    pub fn rows(&self, range: &KeyRange) -> (String, Vec<Value>) {
        let (filter, params) = self.range_where(range);
        let order =
            if self.key.is_empty() { String::new() } else { format!(" ORDER BY {}", self.order_by()) };
        (format!("SELECT {} FROM {}{filter}{order}", self.select_list(), self.table), params)
    }

    /// The rows with the given keys (`key IN (...)` as OR-ed equalities), for re-checks.
    pub fn rows_by_keys(&self, keys: &[Vec<SqlValue>]) -> (String, Vec<Value>) {
        let cols: Vec<&(String, ColumnType)> = self.key_cols().collect();
        let mut params = Vec::new();
        let ors: Vec<String> = keys
            .iter()
            .map(|k| {
                let ands: Vec<String> = cols
                    .iter()
                    .zip(k)
                    .map(|((name, ty), v)| {
                        params.push(ferry_mysql::values::to_param(v));
                        format!("{} = {}", quote_ident(name), ferry_mysql::values::placeholder(ty))
                    })
                    .collect();
                format!("({})", ands.join(" AND "))
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {}",
            self.select_list(),
            self.table,
            if ors.is_empty() { "FALSE".to_owned() } else { ors.join(" OR ") },
            self.order_by()
        );
        (sql, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> TableSql {
        TableSql {
            table: "`shop`.`users`".into(),
            columns: vec![
                ("a".into(), ColumnType::Int { bytes: 4, unsigned: false }),
                ("b".into(), ColumnType::Text { charset: "utf8mb4".into() }),
                ("f".into(), ColumnType::Float),
            ],
            key: vec![0, 1],
            convert: vec![false, true, false],
            nullable: vec![false, false, true],
            hash_fn: "CRC32",
        }
    }

    #[test]
    fn row_hash_widens_floats_converts_text_and_flags_nulls() {
        assert_eq!(
            users().row_hash(),
            "CRC32(CONCAT_WS(0x1f, `a`, CONVERT(`b` USING utf8mb4), (`f` + 0e0), CONCAT(ISNULL(`f`))))"
        );
    }

    #[test]
    fn ranges_are_half_open_and_spelled_out_per_key_column() {
        let t = users();
        let range = KeyRange {
            lo: Some(vec![SqlValue::Int(1), SqlValue::Text("x".into())]),
            hi: Some(vec![SqlValue::Int(5), SqlValue::Text("y".into())]),
        };
        let (sql, params) = t.range_where(&range);
        assert_eq!(
            sql,
            " WHERE ((`a` > ?) OR (`a` = ? AND `b` > ?)) AND NOT ((`a` > ?) OR (`a` = ? AND `b` > ?))"
        );
        assert_eq!(params.len(), 6);
        assert_eq!(t.range_where(&KeyRange::default()).0, "");
        let (sql, _) = t.key_at(&KeyRange::default(), 9);
        assert_eq!(sql, "SELECT `a`, `b` FROM `shop`.`users` ORDER BY `a`, `b` LIMIT 1 OFFSET 9");
    }

    #[test]
    fn rows_by_keys_matches_each_key() {
        let (sql, params) = users().rows_by_keys(&[
            vec![SqlValue::Int(1), SqlValue::Text("x".into())],
            vec![SqlValue::Int(2), SqlValue::Text("y".into())],
        ]);
        assert!(
            sql.ends_with("WHERE (`a` = ? AND `b` = ?) OR (`a` = ? AND `b` = ?) ORDER BY `a`, `b`"),
            "{sql}"
        );
        assert_eq!(params.len(), 4);
    }
}
