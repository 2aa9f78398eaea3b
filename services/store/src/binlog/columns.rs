//! What a row event's table map says about each column, checked against the schema version
//! the row is decoded with.
//!
//! Row events carry no column names, but their table map carries each column's binlog type
//! and type metadata (integer width, decimal precision and scale, fractional seconds, bit
//! width). The schema history is read from the source's catalog when the store captures a DDL;
//! if the table changed again before that (the store was behind the source across two DDLs of
//! one table), the recorded version is not the one the rows were written under. Decoding with
//! it anyway can silently produce wrong values (an INT column widened to BIGINT would be cut to
//! 32 bits), so every row event is checked here first and a mismatch stops capture with a report.
//! The check is as strict as the binlog allows: column names are in the table map only with
//! `binlog_row_metadata=FULL` (MySQL 8, MariaDB 10.5+), and then they are checked too, which
//! catches a rename or a reorder of same-typed columns; character set and length are not
//! checked.

use ferry_schemas::value::ColumnType;
use mysql_async::binlog::events::{OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType as Wire;

/// One column as the table map describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BinlogColumn {
    /// TINY .. LONGLONG, by width in bytes.
    Int(u8),
    Decimal {
        precision: u8,
        scale: u8,
    },
    Float,
    Double,
    /// CHAR, VARCHAR, BINARY, VARBINARY.
    String,
    /// TEXT and BLOB (and MariaDB's JSON, a LONGTEXT).
    Blob,
    /// MySQL's JSON.
    Json,
    Date,
    /// Temporal types with fractional seconds (the `*2` formats name them; `None`: the old
    /// format, whatever the precision).
    DateTime(Option<u8>),
    Timestamp(Option<u8>),
    Time(Option<u8>),
    Year,
    Enum,
    Set,
    Bit {
        width: u16,
    },
    /// A type the store does not carry (the catalog check refuses such columns before).
    Other(u8),
}

impl BinlogColumn {
    /// From a column's binlog type (ENUM and SET already told apart from CHAR) and its metadata.
    pub fn from_wire(ty: Wire, meta: &[u8]) -> Self {
        let byte = |i: usize| meta.get(i).copied().unwrap_or(0);
        match ty {
            Wire::MYSQL_TYPE_TINY => Self::Int(1),
            Wire::MYSQL_TYPE_SHORT => Self::Int(2),
            Wire::MYSQL_TYPE_INT24 => Self::Int(3),
            Wire::MYSQL_TYPE_LONG => Self::Int(4),
            Wire::MYSQL_TYPE_LONGLONG => Self::Int(8),
            Wire::MYSQL_TYPE_NEWDECIMAL => Self::Decimal { precision: byte(0), scale: byte(1) },
            Wire::MYSQL_TYPE_FLOAT => Self::Float,
            Wire::MYSQL_TYPE_DOUBLE => Self::Double,
            Wire::MYSQL_TYPE_VARCHAR | Wire::MYSQL_TYPE_VAR_STRING | Wire::MYSQL_TYPE_STRING => Self::String,
            Wire::MYSQL_TYPE_TINY_BLOB
            | Wire::MYSQL_TYPE_MEDIUM_BLOB
            | Wire::MYSQL_TYPE_LONG_BLOB
            | Wire::MYSQL_TYPE_BLOB => Self::Blob,
            Wire::MYSQL_TYPE_JSON => Self::Json,
            Wire::MYSQL_TYPE_DATE | Wire::MYSQL_TYPE_NEWDATE => Self::Date,
            Wire::MYSQL_TYPE_DATETIME => Self::DateTime(None),
            Wire::MYSQL_TYPE_DATETIME2 => Self::DateTime(Some(byte(0))),
            Wire::MYSQL_TYPE_TIMESTAMP => Self::Timestamp(None),
            Wire::MYSQL_TYPE_TIMESTAMP2 => Self::Timestamp(Some(byte(0))),
            Wire::MYSQL_TYPE_TIME => Self::Time(None),
            Wire::MYSQL_TYPE_TIME2 => Self::Time(Some(byte(0))),
            Wire::MYSQL_TYPE_YEAR => Self::Year,
            Wire::MYSQL_TYPE_ENUM => Self::Enum,
            Wire::MYSQL_TYPE_SET => Self::Set,
            // Metadata: bits beyond whole bytes, then whole bytes.
            Wire::MYSQL_TYPE_BIT => Self::Bit { width: u16::from(byte(1)) * 8 + u16::from(byte(0)) },
            other => Self::Other(other as u8),
        }
    }

    /// Every column of a table map, in order.
    pub fn of_table(tme: &TableMapEvent<'_>) -> Result<Vec<Self>, String> {
        (0..tme.columns_count() as usize)
            .map(|i| {
                let ty = tme
                    .get_column_type(i)
                    .map_err(|e| format!("column {i}: {e}"))?
                    .ok_or_else(|| format!("column {i} is missing from the table map"))?;
                Ok(Self::from_wire(ty, tme.get_column_metadata(i).unwrap_or_default()))
            })
            .collect()
    }

    /// The column names the table map carries (`binlog_row_metadata=FULL`), if it does.
    pub fn names_of(tme: &TableMapEvent<'_>) -> Option<Vec<String>> {
        tme.iter_optional_meta().find_map(|field| match field {
            Ok(OptionalMetadataField::ColumnName(names)) => {
                names.iter_names().map(|n| n.ok().map(|n| n.name().into_owned())).collect()
            }
            _ => None,
        })
    }

    /// Whether values of this binlog column decode as `ty` without loss.
    pub fn fits(&self, ty: &ColumnType) -> bool {
        match (self, ty) {
            (Self::Int(w), ColumnType::Int { bytes, .. }) => w == bytes,
            (Self::Decimal { precision: p, scale: s }, ColumnType::Decimal { precision, scale }) => {
                p == precision && s == scale
            }
            (Self::Float, ColumnType::Float) | (Self::Double, ColumnType::Double) => true,
            (Self::String, ColumnType::Text { .. } | ColumnType::Binary) => true,
            (Self::Blob, ColumnType::Text { .. } | ColumnType::Binary | ColumnType::Json) => true,
            (Self::Json, ColumnType::Json) => true,
            (Self::Date, ColumnType::Date) | (Self::Year, ColumnType::Year) => true,
            (Self::DateTime(f), ColumnType::DateTime { fsp })
            | (Self::Timestamp(f), ColumnType::Timestamp { fsp })
            | (Self::Time(f), ColumnType::Time { fsp }) => f.is_none_or(|f| f == *fsp),
            (Self::Enum, ColumnType::Enum { .. }) | (Self::Set, ColumnType::Set { .. }) => true,
            (Self::Bit { width: w }, ColumnType::Bit { width }) => *w == u16::from(*width),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(bytes: u8) -> ColumnType {
        ColumnType::Int { bytes, unsigned: false }
    }

    #[test]
    fn widths_precisions_and_fractions_must_match() {
        let bigint = BinlogColumn::from_wire(Wire::MYSQL_TYPE_LONGLONG, &[]);
        assert!(bigint.fits(&int(8)));
        // INT widened to BIGINT after the row was written: its values would be cut.
        assert!(!bigint.fits(&int(4)));
        let dec = BinlogColumn::from_wire(Wire::MYSQL_TYPE_NEWDECIMAL, &[12, 4]);
        assert!(dec.fits(&ColumnType::Decimal { precision: 12, scale: 4 }));
        assert!(!dec.fits(&ColumnType::Decimal { precision: 10, scale: 2 }));
        let dt = BinlogColumn::from_wire(Wire::MYSQL_TYPE_DATETIME2, &[6]);
        assert!(dt.fits(&ColumnType::DateTime { fsp: 6 }));
        assert!(!dt.fits(&ColumnType::DateTime { fsp: 0 }));
        assert!(!dt.fits(&ColumnType::Timestamp { fsp: 6 }));
        // The old temporal format does not carry the precision.
        assert!(BinlogColumn::from_wire(Wire::MYSQL_TYPE_TIME, &[]).fits(&ColumnType::Time { fsp: 3 }));
        // BIT(10): 2 bits beyond 1 whole byte.
        let bit = BinlogColumn::from_wire(Wire::MYSQL_TYPE_BIT, &[2, 1]);
        assert!(bit.fits(&ColumnType::Bit { width: 10 }));
        assert!(!bit.fits(&ColumnType::Bit { width: 8 }));
    }

    #[test]
    fn families_follow_the_binlog_type() {
        let text = ColumnType::Text { charset: "utf8mb4".into() };
        let varchar = BinlogColumn::from_wire(Wire::MYSQL_TYPE_VARCHAR, &[0, 1]);
        assert!(varchar.fits(&text) && varchar.fits(&ColumnType::Binary));
        assert!(!varchar.fits(&int(4)) && !varchar.fits(&ColumnType::Json));
        // MariaDB writes JSON as a LONGTEXT (a blob); MySQL has its own type.
        let blob = BinlogColumn::from_wire(Wire::MYSQL_TYPE_BLOB, &[4]);
        assert!(blob.fits(&ColumnType::Json) && blob.fits(&text));
        assert!(BinlogColumn::from_wire(Wire::MYSQL_TYPE_JSON, &[4]).fits(&ColumnType::Json));
        assert!(!BinlogColumn::from_wire(Wire::MYSQL_TYPE_JSON, &[4]).fits(&text));
        let labels = vec!["a".to_owned()];
        assert!(BinlogColumn::Enum.fits(&ColumnType::Enum { labels: labels.clone() }));
        assert!(!BinlogColumn::Enum.fits(&ColumnType::Set { labels }));
        assert!(!BinlogColumn::from_wire(Wire::MYSQL_TYPE_GEOMETRY, &[4]).fits(&ColumnType::Binary));
    }
}
