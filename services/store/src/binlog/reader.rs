//! A binlog reader over mysql_async's replication stream, as a MariaDB-aware replica.
//!
//! It asks for MariaDB's real GTID events (`@mariadb_slave_capability=4`) and for heartbeats,
//! starts at a file position, and turns events into [`Event`]s each carrying the position
//! right after it (`file`, the header's `log_pos`), which is what a consumer records to resume.
//! The first, artificial ROTATE event carries checksum bytes in its name and is not trusted;
//! later rotations switch the file. Row images must be complete (`binlog_row_image=FULL`).

use ferry_mysql::SourceError;
use ferry_schemas::cdc::ChangeOp;
use ferry_schemas::position::{BinlogFilePos, MariaGtid, MariaGtidList, MysqlGtidSet};
use ferry_schemas::table::TableRef;
use ferry_schemas::task::{Endpoint, ObjectFilter};
use futures::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::*;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};

use super::columns::MappedColumn;
use super::gtid::{parse_gtid, parse_gtid_list, FL_STANDALONE, GTID_EVENT, GTID_LIST_EVENT};
use super::mysql_gtid::{previous_set, MysqlGtid};

pub type RowImage = Vec<BinlogValue<'static>>;

#[derive(Debug)]
pub enum Event {
    /// Start of a MariaDB transaction (or of a standalone statement such as DDL).
    Gtid {
        gtid: MariaGtid,
        standalone: bool,
    },
    GtidList(MariaGtidList),
    /// Start of a MySQL transaction (or of a DDL statement) with a GTID.
    MysqlGtid(MysqlGtid),
    /// Start of a MySQL transaction (or DDL) without one (`gtid_mode` off).
    MysqlAnonymousGtid,
    /// The untagged MySQL transactions before this binlog file, and whether tagged ones were
    /// listed too.
    PreviousGtids(MysqlGtidSet, bool),
    Rows {
        table: TableRef,
        op: ChangeOp,
        rows: Vec<(Option<RowImage>, Option<RowImage>)>,
        /// The columns as the table map describes them (empty for tables not decoded).
        columns: Vec<MappedColumn>,
    },
    Query {
        database: String,
        sql: String,
    },
    /// Commit of a transaction.
    Xid,
    Heartbeat,
    Other,
}

#[derive(Debug)]
pub struct Positioned {
    pub event: Event,
    /// Position right after the event.
    pub end: BinlogFilePos,
    /// Event timestamp (source clock, seconds).
    pub timestamp: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("binlog event at {at}: {message}")]
    Event { at: BinlogFilePos, message: String },
}

pub struct Reader {
    stream: BinlogStream,
    file: String,
    /// Tables whose rows are decoded; rows of other tables are not even parsed (their values
    /// may hit decoding bugs, and they are not needed).
    only: Option<ObjectFilter>,
}

impl Reader {
    /// Opens a replication stream at `start`. `until_end` stops at the current end of the
    /// binlog instead of waiting for more (tests, catch-up measurements).
    pub async fn open(
        endpoint: &Endpoint,
        server_id: u32,
        start: &BinlogFilePos,
        until_end: bool,
    ) -> Result<Self, SourceError> {
        let what = |s: &str| format!("{s} on {}", endpoint.describe());
        let mut conn = Conn::new(ferry_mysql::conn::opts(endpoint, 1))
            .await
            .map_err(|e| SourceError::mysql(what("connecting"), e))?;
        for set in ["SET @mariadb_slave_capability = 4", "SET @master_heartbeat_period = 500000000"] {
            conn.query_drop(set)
                .await
                .map_err(|e| SourceError::mysql(what("preparing the binlog session"), e))?;
        }
        let mut request =
            BinlogStreamRequest::new(server_id).with_filename(start.file.as_bytes()).with_pos(start.offset);
        if until_end {
            request = request.with_non_blocking();
        }
        let stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| SourceError::mysql(what("starting the binlog stream"), e))?;
        Ok(Self { stream, file: start.file.clone(), only: None })
    }

    /// Decodes rows of the tables `objects` selects only; other tables' row events come out
    /// with no rows.
    pub fn only(mut self, objects: ObjectFilter) -> Self {
        self.only = Some(objects);
        self
    }

    /// The next event, `None` at the end of a non-blocking stream.
    pub async fn next(&mut self) -> Option<Result<Positioned, ReadError>> {
        let ev = match self.stream.next().await? {
            Ok(ev) => ev,
            Err(e) => return Some(Err(SourceError::mysql("reading the binlog", e).into())),
        };
        let header = ev.header();
        let (log_pos, timestamp, kind, server_id) =
            (header.log_pos(), header.timestamp(), header.event_type_raw(), header.server_id());
        let at = BinlogFilePos { file: self.file.clone(), offset: u64::from(log_pos) };
        let fail = |message: String| ReadError::Event { at: at.clone(), message };
        let event = match kind {
            GTID_EVENT => match parse_gtid(ev.data(), server_id) {
                Ok((gtid, flags)) => Event::Gtid { gtid, standalone: flags & FL_STANDALONE != 0 },
                Err(e) => return Some(Err(fail(e.to_string()))),
            },
            GTID_LIST_EVENT => match parse_gtid_list(ev.data()) {
                Ok(list) => Event::GtidList(list),
                Err(e) => return Some(Err(fail(e.to_string()))),
            },
            _ => match ev.read_data() {
                Ok(Some(data)) => match self.convert(data, log_pos) {
                    Ok(e) => e,
                    Err(m) => return Some(Err(fail(m))),
                },
                Ok(None) => Event::Other,
                Err(e) => return Some(Err(fail(format!("undecodable event: {e}")))),
            },
        };
        let end = BinlogFilePos {
            file: self.file.clone(),
            offset: if log_pos == 0 { at.offset } else { u64::from(log_pos) },
        };
        Some(Ok(Positioned { event, end, timestamp }))
    }

    fn convert(&mut self, data: EventData<'_>, log_pos: u32) -> Result<Event, String> {
        Ok(match data {
            EventData::RotateEvent(r) => {
                // The artificial rotation (log_pos 0) names the file with checksum bytes attached.
                if log_pos != 0 {
                    self.file = r.name().into_owned();
                }
                Event::Other
            }
            EventData::QueryEvent(q) => {
                Event::Query { database: q.schema().into_owned(), sql: q.query().into_owned() }
            }
            EventData::XidEvent(_) => Event::Xid,
            EventData::GtidEvent(g) => Event::MysqlGtid(MysqlGtid::of(&g)),
            EventData::AnonymousGtidEvent(_) => Event::MysqlAnonymousGtid,
            EventData::PreviousGtidsEvent(p) => {
                let (set, tagged) = previous_set(&p);
                Event::PreviousGtids(set, tagged)
            }
            EventData::TransactionPayloadEvent(_) => {
                // Skipping it would lose the transaction it compresses.
                return Err("a compressed transaction (MySQL binlog_transaction_compression=ON): set \
                     binlog_transaction_compression=OFF on the source and restart the task from a new full copy"
                    .into());
            }
            EventData::HeartbeatEvent => Event::Heartbeat,
            EventData::RowsEvent(re) => self.rows(re)?,
            _ => Event::Other,
        })
    }

    fn rows(&self, re: RowsEventData<'_>) -> Result<Event, String> {
        let tme = self
            .stream
            .get_tme(re.table_id())
            .ok_or_else(|| format!("rows for unknown table id {}", re.table_id()))?;
        let table = TableRef::new(tme.database_name().into_owned(), tme.table_name().into_owned());
        let op = match &re {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => ChangeOp::Insert,
            RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => ChangeOp::Update,
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => ChangeOp::Delete,
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(format!(
                    "partial JSON update of {table}: set binlog_row_value_options='' on the source"
                ))
            }
        };
        let mut rows = Vec::new();
        if self.only.as_ref().is_some_and(|f| !f.includes(&table)) {
            return Ok(Event::Rows { table, op, rows, columns: Vec::new() });
        }
        let columns = MappedColumn::of_table(tme).map_err(|e| format!("table map of {table}: {e}"))?;
        for row in re.rows(tme) {
            let (before, after) = row.map_err(|e| format!("undecodable row of {table}: {e}"))?;
            rows.push((image(before, &table)?, image(after, &table)?));
        }
        Ok(Event::Rows { table, op, rows, columns })
    }
}

fn image(row: Option<BinlogRow>, table: &TableRef) -> Result<Option<RowImage>, String> {
    let Some(mut row) = row else { return Ok(None) };
    (0..row.len())
        .map(|i| {
            row.take(i).map(BinlogValue::into_owned).ok_or_else(|| {
                format!("row image of {table} lacks column {i}: the source needs binlog_row_image=FULL")
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
