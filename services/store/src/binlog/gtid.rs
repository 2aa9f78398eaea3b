//! MariaDB's GTID events, which mysql_common passes through undecoded (it knows them as unknown
//! event types once `@mariadb_slave_capability=4` makes the server send them).
//!
//! Layouts (checksum already stripped): GTID (162) = `seq_no u64 LE, domain_id u32 LE, flags2 u8`
//! (the server id is the event header's); GTID_LIST (163) = `count u32 LE` (low 28 bits), then
//! `count x {domain u32, server u32, seq u64}`, all little-endian.

use ferry_schemas::position::{MariaGtid, MariaGtidList};

pub const GTID_EVENT: u8 = 162;
pub const GTID_LIST_EVENT: u8 = 163;
/// `flags2` bit: the transaction is a single standalone statement (no BEGIN/COMMIT), e.g. DDL.
pub const FL_STANDALONE: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed MariaDB {what} event: {len} bytes")]
pub struct GtidParseError {
    pub what: &'static str,
    pub len: usize,
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

/// The GTID of a GTID event and its `flags2`.
pub fn parse_gtid(data: &[u8], server_id: u32) -> Result<(MariaGtid, u8), GtidParseError> {
    let err = || GtidParseError { what: "GTID", len: data.len() };
    let seq = u64_at(data, 0).ok_or_else(err)?;
    let domain = u32_at(data, 8).ok_or_else(err)?;
    let flags2 = *data.get(12).ok_or_else(err)?;
    Ok((MariaGtid { domain, server: server_id, seq }, flags2))
}

/// The GTID list of a GTID_LIST event (the last GTID of each domain; later entries win).
pub fn parse_gtid_list(data: &[u8]) -> Result<MariaGtidList, GtidParseError> {
    let err = || GtidParseError { what: "GTID_LIST", len: data.len() };
    let count = (u32_at(data, 0).ok_or_else(err)? & 0x0fff_ffff) as usize;
    let mut list = MariaGtidList::default();
    for i in 0..count {
        let at = 4 + i * 16;
        let domain = u32_at(data, at).ok_or_else(err)?;
        let server = u32_at(data, at + 4).ok_or_else(err)?;
        let seq = u64_at(data, at + 8).ok_or_else(err)?;
        list.0.insert(domain, MariaGtid { domain, server, seq });
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_event_as_seen_on_mariadb_10_11() {
        // 0-1-1403 with flags2 0x0c, as captured in the library notes.
        let mut d = 1403u64.to_le_bytes().to_vec();
        d.extend(0u32.to_le_bytes());
        d.push(0x0c);
        let (g, flags) = parse_gtid(&d, 1).unwrap();
        assert_eq!(g.to_string(), "0-1-1403");
        assert_eq!(flags, 0x0c);
        assert!(parse_gtid(&d[..12], 1).is_err());
    }

    #[test]
    fn gtid_list_event() {
        let mut d = 2u32.to_le_bytes().to_vec();
        for (dom, srv, seq) in [(0u32, 1u32, 1402u64), (5, 2, 7)] {
            d.extend(dom.to_le_bytes());
            d.extend(srv.to_le_bytes());
            d.extend(seq.to_le_bytes());
        }
        assert_eq!(parse_gtid_list(&d).unwrap().to_string(), "0-1-1402,5-2-7");
        assert!(parse_gtid_list(&d[..20]).is_err());
        assert_eq!(parse_gtid_list(&0u32.to_le_bytes()).unwrap().to_string(), "");
    }
}
