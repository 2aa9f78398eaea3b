//! MySQL's GTID events (decoded by mysql_common) as Ferry's GTID text and sets.
//!
//! A MySQL transaction (or DDL) opens with a `Gtid` event naming its server UUID and number
//! (`Anonymous_gtid` when `gtid_mode` is off); each binlog file opens with `Previous_gtids`,
//! the set of every transaction before it. Intervals there are half-open (`[start, end)`);
//! Ferry's [`MysqlGtidSet`] keeps closed ones, as `@@gtid_executed` prints them. MySQL 8.4's
//! tagged GTIDs (`uuid:tag:n`) are carried as text but are not part of a set.

use ferry_schemas::position::MysqlGtidSet;
use mysql_async::binlog::events::{GtidEvent, PreviousGtidsEvent};

/// `3e11fa47-71ca-11e1-9e33-c80aa9429562`
pub fn uuid_text(sid: &[u8; 16]) -> String {
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// The GTID of a transaction: server UUID, tag (MySQL 8.4), number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlGtid {
    pub uuid: String,
    pub tag: Option<String>,
    pub gno: u64,
}

impl MysqlGtid {
    pub fn of(ev: &GtidEvent) -> Self {
        Self { uuid: uuid_text(&ev.sid()), tag: ev.tag().map(|t| t.as_str().to_owned()), gno: ev.gno() }
    }
}

impl std::fmt::Display for MysqlGtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "{}:{tag}:{}", self.uuid, self.gno),
            None => write!(f, "{}:{}", self.uuid, self.gno),
        }
    }
}

/// The untagged transactions before a binlog file, and whether it also lists tagged ones.
pub fn previous_set(ev: &PreviousGtidsEvent<'_>) -> (MysqlGtidSet, bool) {
    let mut set = MysqlGtidSet::default();
    let mut tagged = false;
    for sid in ev.sids() {
        if sid.tag().is_some() {
            tagged = true;
            continue;
        }
        let ivs = set.0.entry(uuid_text(&sid.uuid())).or_default();
        ivs.extend(
            sid.intervals().iter().filter(|iv| iv.end() > iv.start()).map(|iv| (iv.start(), iv.end() - 1)),
        );
    }
    (set, tagged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::binlog::events::PreviousGtidsSid;
    use mysql_async::GnoInterval;

    const SID: [u8; 16] =
        [0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62];

    #[test]
    fn a_gtid_event_reads_as_mysql_prints_it() {
        let g = MysqlGtid::of(&GtidEvent::new(SID, 77));
        assert_eq!(g.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:77");
    }

    #[test]
    fn previous_gtids_become_closed_intervals_like_gtid_executed() {
        let ev = PreviousGtidsEvent::new(vec![PreviousGtidsSid::new(
            SID,
            None,
            vec![GnoInterval::new(1, 78), GnoInterval::new(100, 101)],
        )]);
        let (set, tagged) = previous_set(&ev);
        assert!(!tagged);
        assert_eq!(set.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77:100");
        let executed: MysqlGtidSet = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-100".parse().unwrap();
        assert!(executed.contains(&set) && executed.has("3e11fa47-71ca-11e1-9e33-c80aa9429562", 100));
        assert!(!set.has("3e11fa47-71ca-11e1-9e33-c80aa9429562", 78));
    }
}
