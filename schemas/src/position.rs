//! Typed source positions with a total order.
//!
//! A position is never compared as a string: `mysql-bin.999999` < `mysql-bin.1000000` although
//! the strings sort the other way. [`BinlogFilePos`] orders by the numeric file index, then the
//! offset; [`SourcePosition`] carries the file position (the total order within one source server)
//! and, when the server has one, its GTID state (MariaDB GTID list or MySQL GTID set), used to
//! resume on another server after a fail-over.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid position `{input}`: {reason}")]
pub struct PositionParseError {
    pub input: String,
    pub reason: &'static str,
}

fn parse_err(input: &str, reason: &'static str) -> PositionParseError {
    PositionParseError { input: input.to_owned(), reason }
}

/// A binlog file name and a byte offset in it, e.g. `mysql-bin.000003:4`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct BinlogFilePos {
    pub file: String,
    pub offset: u64,
}

impl BinlogFilePos {
    /// Splits `base.000123` into (`base`, 123). Files without a numeric suffix get index 0.
    fn split(&self) -> (&str, u64) {
        match self.file.rsplit_once('.') {
            Some((stem, idx)) if !idx.is_empty() && idx.bytes().all(|b| b.is_ascii_digit()) => {
                (stem, idx.parse().unwrap_or(u64::MAX))
            }
            _ => (self.file.as_str(), 0),
        }
    }
}

impl Ord for BinlogFilePos {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a_stem, a_idx) = self.split();
        let (b_stem, b_idx) = other.split();
        a_idx.cmp(&b_idx).then_with(|| a_stem.cmp(b_stem)).then_with(|| self.offset.cmp(&other.offset))
    }
}
impl PartialOrd for BinlogFilePos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl fmt::Display for BinlogFilePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)
    }
}
impl FromStr for BinlogFilePos {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (file, offset) = s.rsplit_once(':').ok_or_else(|| parse_err(s, "expected FILE:OFFSET"))?;
        if file.is_empty() {
            return Err(parse_err(s, "empty file name"));
        }
        let offset = offset.parse().map_err(|_| parse_err(s, "offset is not a number"))?;
        Ok(Self { file: file.to_owned(), offset })
    }
}

/// One MariaDB GTID: `domain-server-seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}
impl FromStr for MariaGtid {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut it = s.trim().splitn(3, '-');
        let mut next = || it.next().ok_or_else(|| parse_err(s, "expected DOMAIN-SERVER-SEQ"));
        let domain = next()?.parse().map_err(|_| parse_err(s, "bad domain id"))?;
        let server = next()?.parse().map_err(|_| parse_err(s, "bad server id"))?;
        let seq = next()?.parse().map_err(|_| parse_err(s, "bad sequence number"))?;
        Ok(Self { domain, server, seq })
    }
}

/// A MariaDB GTID list (`@@gtid_binlog_pos`): the last GTID of each replication domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct MariaGtidList(pub BTreeMap<u32, MariaGtid>);

impl MariaGtidList {
    /// True when every domain of `self` is at or beyond the same domain of `other`.
    pub fn contains(&self, other: &MariaGtidList) -> bool {
        other.0.iter().all(|(d, g)| self.0.get(d).is_some_and(|s| s.seq >= g.seq))
    }
}
impl fmt::Display for MariaGtidList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.values().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}
impl FromStr for MariaGtidList {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut map = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g: MariaGtid = part.parse()?;
            if map.insert(g.domain, g).is_some() {
                return Err(parse_err(s, "two GTIDs for the same domain"));
            }
        }
        Ok(Self(map))
    }
}

/// A MySQL GTID set (`@@gtid_executed`): per server UUID, sorted disjoint closed intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct MysqlGtidSet(pub BTreeMap<String, Vec<(u64, u64)>>);

impl MysqlGtidSet {
    /// True when the transaction `uuid:gno` is in the set.
    pub fn has(&self, uuid: &str, gno: u64) -> bool {
        self.0.get(uuid).is_some_and(|ivs| ivs.iter().any(|&(a, b)| a <= gno && gno <= b))
    }

    /// True when every transaction of `other` is in `self`.
    pub fn contains(&self, other: &MysqlGtidSet) -> bool {
        other.0.iter().all(|(uuid, ivs)| {
            let mine = self.0.get(uuid).map(Vec::as_slice).unwrap_or(&[]);
            ivs.iter().all(|&(a, b)| mine.iter().any(|&(x, y)| x <= a && b <= y))
        })
    }
}
impl fmt::Display for MysqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (uuid, ivs) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(uuid)?;
            for (a, b) in ivs {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}
impl FromStr for MysqlGtidSet {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut map: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split(':');
            let uuid = it.next().unwrap_or_default().to_ascii_lowercase();
            if uuid.len() != 36 {
                return Err(parse_err(s, "server UUID must have 36 characters"));
            }
            let ivs = map.entry(uuid).or_default();
            for iv in it {
                let (a, b) = match iv.split_once('-') {
                    Some((a, b)) => (a, b),
                    None => (iv, iv),
                };
                let a: u64 = a.parse().map_err(|_| parse_err(s, "bad interval start"))?;
                let b: u64 = b.parse().map_err(|_| parse_err(s, "bad interval end"))?;
                if a == 0 || b < a {
                    return Err(parse_err(s, "interval must be 1 <= start <= end"));
                }
                ivs.push((a, b));
            }
            ivs.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
            for &(a, b) in ivs.iter() {
                match merged.last_mut() {
                    Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            *ivs = merged;
        }
        Ok(Self(map))
    }
}

/// GTID state of a position, by server flavour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "flavor", content = "gtid", rename_all = "snake_case")]
pub enum GtidState {
    Mariadb(MariaGtidList),
    Mysql(MysqlGtidSet),
}

/// A MySQL GTID set when the text has a `uuid:` part, else a MariaDB GTID list; never empty.
impl FromStr for GtidState {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let state = if s.contains(':') {
            GtidState::Mysql(s.parse::<MysqlGtidSet>()?)
        } else {
            GtidState::Mariadb(s.parse::<MariaGtidList>()?)
        };
        let empty = match &state {
            GtidState::Mysql(set) => set.0.values().all(Vec::is_empty),
            GtidState::Mariadb(list) => list.0.is_empty(),
        };
        if empty {
            return Err(parse_err(s, "no GTID in it"));
        }
        Ok(state)
    }
}

/// A position in the source's binlog. Ordered by the file position (a total order on one
/// server); the GTID state rides along for resuming elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourcePosition {
    pub binlog: BinlogFilePos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<GtidState>,
    /// Server id of the source the position was read on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<u32>,
}

impl Ord for SourcePosition {
    fn cmp(&self, other: &Self) -> Ordering {
        self.binlog.cmp(&other.binlog)
    }
}
impl PartialOrd for SourcePosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.binlog)?;
        match &self.gtid {
            Some(GtidState::Mariadb(g)) if !g.0.is_empty() => write!(f, " gtid={g}"),
            Some(GtidState::Mysql(g)) if !g.0.is_empty() => write!(f, " gtid={g}"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pos(file: &str, offset: u64) -> BinlogFilePos {
        BinlogFilePos { file: file.into(), offset }
    }

    #[test]
    fn file_index_is_compared_as_a_number() {
        assert!(pos("mysql-bin.999999", 900) < pos("mysql-bin.1000000", 4));
        assert!(pos("mysql-bin.000002", 4) > pos("mysql-bin.000001", 99_999));
        assert!(pos("mysql-bin.000002", 5) > pos("mysql-bin.000002", 4));
    }

    #[test]
    fn gtid_lists_parse_and_contain() {
        let a: MariaGtidList = "0-1-100,1-2-5".parse().unwrap();
        let b: MariaGtidList = "0-1-99".parse().unwrap();
        assert!(a.contains(&b));
        assert!(!b.contains(&a));
        assert_eq!(a.to_string(), "0-1-100,1-2-5");
        assert!("0-1".parse::<MariaGtidList>().is_err());
        assert!("0-1-1,0-2-2".parse::<MariaGtidList>().is_err());
    }

    #[test]
    fn mysql_gtid_sets_merge_intervals() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let s: MysqlGtidSet = format!("{u}:1-5:6-9:11").parse().unwrap();
        assert_eq!(s.to_string(), format!("{u}:1-9:11"));
        let sub: MysqlGtidSet = format!("{u}:2-4").parse().unwrap();
        assert!(s.contains(&sub));
        assert!(!sub.contains(&s));
    }

    proptest! {
        #[test]
        fn order_matches_numeric_order(a in 0u64..2_000_000, b in 0u64..2_000_000, oa in 0u64..1<<40, ob in 0u64..1<<40) {
            let pa = pos(&format!("bin.{a:06}"), oa);
            let pb = pos(&format!("bin.{b:06}"), ob);
            prop_assert_eq!(pa.cmp(&pb), (a, oa).cmp(&(b, ob)));
        }

        #[test]
        fn file_pos_round_trips(idx in 0u64..10_000_000, off in any::<u64>()) {
            let p = pos(&format!("mariadb-bin.{idx:06}"), off);
            prop_assert_eq!(p.to_string().parse::<BinlogFilePos>().unwrap(), p);
        }

        #[test]
        fn gtid_list_round_trips(entries in proptest::collection::btree_map(0u32..50, (any::<u32>(), any::<u64>()), 0..6)) {
            let list = MariaGtidList(entries.into_iter().map(|(d, (s, q))| (d, MariaGtid { domain: d, server: s, seq: q })).collect());
            prop_assert_eq!(list.to_string().parse::<MariaGtidList>().unwrap(), list);
        }
    }
}
