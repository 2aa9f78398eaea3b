//! What a row event's table map says about each column, checked against the schema version
//! the row is decoded with.
//!
//! Row events carry no column names, but their table map carries each column's binlog type
//! and type metadata (integer width, decimal precision and scale, fractional seconds, bit
//! width), and, as `binlog_row_metadata` asks (MySQL 8, MariaDB 10.5+), more: MINIMAL adds
//! the signedness of numeric columns and the collation of character columns, FULL adds column
//! names and ENUM/SET labels. The schema history is read from the source's catalog when the
//! store captures a DDL; if the table changed again before that (the store was behind the
//! source across two DDLs of one table), the recorded version is not the one the rows were
//! written under. Decoding with it anyway can silently produce wrong values (an INT column
//! widened to BIGINT would be cut to 32 bits, a column renamed would get another's values), so
//! every row event is checked here first against everything its table map carries; what
//! happens on a mismatch is `written_schema`'s business.

use ferry_schemas::table::ColumnDef;
use ferry_schemas::value::ColumnType;
use mysql_async::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType as Wire;
use std::collections::HashMap;

/// The source's collation ids, each to the character set it belongs to (table maps name a
/// character column's collation by id).
pub type Collations = HashMap<u16, String>;

/// The collation id of binary strings (BINARY, VARBINARY, BLOB).
pub const BINARY_COLLATION: u16 = 63;

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

    /// Columns whose signedness `binlog_row_metadata` records, in table order (YEAR too, an
    /// unsigned TINYINT underneath).
    fn is_numeric(&self) -> bool {
        matches!(self, Self::Int(_) | Self::Decimal { .. } | Self::Float | Self::Double | Self::Year)
    }

    /// Columns whose collation `binlog_row_metadata` records (ENUM and SET have a list of
    /// their own), in table order.
    fn is_character(&self) -> bool {
        matches!(self, Self::String | Self::Blob)
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

/// One column as the table map describes it: its binlog type, and what `binlog_row_metadata`
/// adds (`None` where the source did not log it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedColumn {
    pub binlog: BinlogColumn,
    pub name: Option<String>,
    /// Numeric columns: whether UNSIGNED.
    pub unsigned: Option<bool>,
    /// Character columns: the collation id.
    pub collation: Option<u16>,
    /// ENUM and SET columns: their labels.
    pub labels: Option<Vec<String>>,
    /// Its place in the primary key.
    pub key_part: Option<usize>,
    pub nullable: bool,
}

impl From<BinlogColumn> for MappedColumn {
    fn from(binlog: BinlogColumn) -> Self {
        Self {
            binlog,
            name: None,
            unsigned: None,
            collation: None,
            labels: None,
            key_part: None,
            nullable: true,
        }
    }
}

impl MappedColumn {
    /// Every column of a table map, in order, with whatever optional metadata it carries.
    pub fn of_table(tme: &TableMapEvent<'_>) -> Result<Vec<Self>, String> {
        let mut columns: Vec<Self> = BinlogColumn::of_table(tme)?.into_iter().map(Self::from).collect();
        let bad = |e: std::io::Error| format!("optional metadata: {e}");
        let nulls = tme.null_bitmask();
        for (i, c) in columns.iter_mut().enumerate() {
            c.nullable = nulls.get(i).is_some_and(|b| *b);
        }
        let meta = OptionalMetaExtractor::new(tme.iter_optional_meta()).map_err(bad)?;
        for (part, index) in meta.iter_primary_key().enumerate() {
            let index = usize::try_from(index.map_err(bad)?).unwrap_or(usize::MAX);
            if let Some(c) = columns.get_mut(index) {
                c.key_part = Some(part);
            }
        }
        for (c, name) in columns.iter_mut().zip(meta.iter_column_name()) {
            c.name = Some(name.map_err(bad)?.name().into_owned());
        }
        let mut signs = meta.iter_signedness();
        for c in columns.iter_mut().filter(|c| c.binlog.is_numeric()) {
            c.unsigned = signs.next();
        }
        let mut collations = meta.iter_charset();
        for c in columns.iter_mut().filter(|c| c.binlog.is_character()) {
            c.collation = collations.next().transpose().map_err(bad)?;
        }
        let mut enums = Vec::new();
        let mut sets = Vec::new();
        for field in tme.iter_optional_meta() {
            match field.map_err(bad)? {
                OptionalMetadataField::EnumStrValue(v) => {
                    for labels in v.iter_values() {
                        enums.push(
                            labels.map_err(bad)?.values().iter().map(|l| l.value().into_owned()).collect(),
                        );
                    }
                }
                OptionalMetadataField::SetStrValue(v) => {
                    for labels in v.iter_values() {
                        sets.push(
                            labels.map_err(bad)?.values().iter().map(|l| l.value().into_owned()).collect(),
                        );
                    }
                }
                _ => {}
            }
        }
        let (mut enums, mut sets) = (enums.into_iter(), sets.into_iter());
        for c in &mut columns {
            c.labels = match c.binlog {
                BinlogColumn::Enum => enums.next(),
                BinlogColumn::Set => sets.next(),
                _ => None,
            };
        }
        Ok(columns)
    }

    /// The character set of a character column, when the table map names its collation and
    /// the source knows it.
    pub fn charset<'c>(&self, collations: &'c Collations) -> Option<&'c str> {
        self.collation.and_then(|id| collations.get(&id)).map(String::as_str)
    }

    /// Why values of this column cannot be decoded as `def` says, `None` when they can: its
    /// binlog type must fit, and whatever else the table map carries must agree.
    pub fn mismatch(&self, def: &ColumnDef, collations: &Collations) -> Option<String> {
        let ty = &def.column_type;
        let says = "but the schema recorded for that position says";
        if !self.binlog.fits(ty) {
            return Some(format!("column {} was {:?}, {says} {ty:?}", def.name, self.binlog));
        }
        if let Some(name) = self.name.as_ref().filter(|n| !n.eq_ignore_ascii_case(&def.name)) {
            return Some(format!(
                "column {name} was at the place of {}, as the schema recorded for that position says",
                def.name
            ));
        }
        match (ty, self.unsigned, self.charset(collations), &self.labels) {
            (ColumnType::Int { unsigned, .. }, Some(u), _, _) if u != *unsigned => {
                let sign = |u: bool| if u { "UNSIGNED" } else { "signed" };
                Some(format!("column {} was {}, {says} {}", def.name, sign(u), sign(*unsigned)))
            }
            (ColumnType::Text { charset }, _, Some(cs), _) if !cs.eq_ignore_ascii_case(charset) => {
                Some(format!("column {} was in character set {cs}, {says} {charset}", def.name))
            }
            (ColumnType::Binary, _, _, _) if self.collation.is_some_and(|c| c != BINARY_COLLATION) => {
                let cs = self.charset(collations).unwrap_or("another");
                Some(format!("column {} was in character set {cs}, {says} binary", def.name))
            }
            (ColumnType::Enum { labels } | ColumnType::Set { labels }, _, _, Some(l)) if l != labels => {
                Some(format!("column {} had the labels {l:?}, {says} {labels:?}", def.name))
            }
            _ => None,
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

    #[test]
    fn signedness_character_sets_and_labels_must_agree_when_logged() {
        let collations: Collations = [(8, "latin1"), (45, "utf8mb4"), (63, "binary")]
            .into_iter()
            .map(|(i, c)| (i, c.to_owned()))
            .collect();
        let def = |name: &str, column_type| ColumnDef {
            name: name.into(),
            sql_type: String::new(),
            column_type,
            nullable: true,
            generated: false,
        };
        let mapped = |binlog| MappedColumn { name: Some("c".into()), ..MappedColumn::from(binlog) };
        let unsigned = MappedColumn { unsigned: Some(true), ..mapped(BinlogColumn::Int(4)) };
        assert_eq!(
            unsigned.mismatch(&def("c", int(4)), &collations).as_deref(),
            Some("column c was UNSIGNED, but the schema recorded for that position says signed")
        );
        assert_eq!(
            unsigned.mismatch(&def("c", ColumnType::Int { bytes: 4, unsigned: true }), &collations),
            None
        );
        // Not logged (binlog_row_metadata=NO_LOG): nothing to compare.
        assert_eq!(mapped(BinlogColumn::Int(4)).mismatch(&def("c", int(4)), &collations), None);
        let latin1 = MappedColumn { collation: Some(8), ..mapped(BinlogColumn::String) };
        let utf8mb4 = ColumnType::Text { charset: "utf8mb4".into() };
        let why = latin1.mismatch(&def("c", utf8mb4.clone()), &collations).unwrap_or_default();
        assert!(why.contains("character set latin1"), "{why}");
        assert!(latin1.mismatch(&def("c", ColumnType::Binary), &collations).is_some());
        let binary = MappedColumn { collation: Some(63), ..mapped(BinlogColumn::Blob) };
        assert!(binary.mismatch(&def("c", utf8mb4.clone()), &collations).is_some());
        assert_eq!(binary.mismatch(&def("c", ColumnType::Binary), &collations), None);
        // MariaDB's JSON is a LONGTEXT in utf8mb4_bin: its collation is not compared.
        let json = MappedColumn { collation: Some(46), ..mapped(BinlogColumn::Blob) };
        assert_eq!(json.mismatch(&def("c", ColumnType::Json), &collations), None);
        // A collation the source did not list: not compared.
        let unknown = MappedColumn { collation: Some(4000), ..mapped(BinlogColumn::String) };
        assert_eq!(unknown.mismatch(&def("c", utf8mb4), &collations), None);
        let labels = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let e = MappedColumn { labels: Some(labels(&["b", "a"])), ..mapped(BinlogColumn::Enum) };
        let why = e.mismatch(&def("c", ColumnType::Enum { labels: labels(&["a", "b"]) }), &collations);
        assert!(why.is_some_and(|w| w.contains("labels")));
        assert_eq!(
            e.mismatch(&def("c", ColumnType::Enum { labels: labels(&["b", "a"]) }), &collations),
            None
        );
    }
}
