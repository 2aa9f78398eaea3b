//! Column types and exact row values on the wire.
//!
//! A row travels as a JSON array; what each cell means comes from its [`ColumnType`], which
//! travels with the batch. The encoding keeps the exact value of every MySQL type:
//! integers are JSON numbers (u64 and i64 exact), FLOAT/DOUBLE numbers that round-trip,
//! DECIMAL a string, binary data base64, temporal values canonical strings with the column's
//! fractional digits (`YYYY-MM-DDTHH:MM:SS.ffffff`; TIMESTAMP in UTC with a `Z`; zero dates kept),
//! ENUM/SET labels, BIT an unsigned number, JSON its text, NULL null.

use crate::tagged::{self, TagFirst};
use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;

/// What a column holds, as far as exact transport is concerned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnType {
    /// TINYINT (1) .. BIGINT (8) bytes wide.
    Int {
        bytes: u8,
        unsigned: bool,
    },
    Decimal {
        precision: u8,
        scale: u8,
    },
    Float,
    Double,
    /// CHAR/VARCHAR/TEXT family in a character set.
    Text {
        charset: String,
    },
    /// BINARY/VARBINARY/BLOB family.
    Binary,
    Date,
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    Time {
        fsp: u8,
    },
    Year,
    Enum {
        labels: Vec<String>,
    },
    Set {
        labels: Vec<String>,
    },
    Bit {
        width: u8,
    },
    Json,
}

impl TagFirst for ColumnType {
    const TAG: &'static str = "kind";
    const VARIANTS: &'static [&'static str] = &[
        "int",
        "decimal",
        "float",
        "double",
        "text",
        "binary",
        "date",
        "date_time",
        "timestamp",
        "time",
        "year",
        "enum",
        "set",
        "bit",
        "json",
    ];

    fn variant<'de, D: Deserializer<'de>>(tag: &str, fields: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Int {
            bytes: u8,
            unsigned: bool,
        }
        #[derive(Deserialize)]
        struct Decimal {
            precision: u8,
            scale: u8,
        }
        #[derive(Deserialize)]
        struct Text {
            charset: String,
        }
        #[derive(Deserialize)]
        struct Fsp {
            fsp: u8,
        }
        #[derive(Deserialize)]
        struct Labels {
            labels: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Bit {
            width: u8,
        }
        Ok(match tag {
            "int" => Int::deserialize(fields).map(|f| Self::Int { bytes: f.bytes, unsigned: f.unsigned })?,
            "decimal" => Decimal::deserialize(fields)
                .map(|f| Self::Decimal { precision: f.precision, scale: f.scale })?,
            "float" => tagged::unit(Self::Float, fields)?,
            "double" => tagged::unit(Self::Double, fields)?,
            "text" => Self::Text { charset: Text::deserialize(fields)?.charset },
            "binary" => tagged::unit(Self::Binary, fields)?,
            "date" => tagged::unit(Self::Date, fields)?,
            "date_time" => Self::DateTime { fsp: Fsp::deserialize(fields)?.fsp },
            "timestamp" => Self::Timestamp { fsp: Fsp::deserialize(fields)?.fsp },
            "time" => Self::Time { fsp: Fsp::deserialize(fields)?.fsp },
            "year" => tagged::unit(Self::Year, fields)?,
            "enum" => Self::Enum { labels: Labels::deserialize(fields)?.labels },
            "set" => Self::Set { labels: Labels::deserialize(fields)?.labels },
            "bit" => Self::Bit { width: Bit::deserialize(fields)?.width },
            "json" => tagged::unit(Self::Json, fields)?,
            _ => return Err(serde::de::Error::unknown_variant(tag, Self::VARIANTS)),
        })
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tagged::deserialize(d)
    }
}

/// A typed cell value.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    /// `YYYY-MM-DD`
    Date(String),
    /// `YYYY-MM-DDTHH:MM:SS[.f]`
    DateTime(String),
    /// `YYYY-MM-DDTHH:MM:SS[.f]Z` (UTC)
    Timestamp(String),
    /// `[-]H+:MM:SS[.f]`
    Time(String),
    Year(u16),
    Enum(String),
    Set(String),
    Bit(u64),
    Json(String),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("value {value} does not fit column type {expected}")]
pub struct ValueError {
    pub value: String,
    pub expected: String,
}

impl SqlValue {
    /// The wire form of this value.
    pub fn to_json(&self) -> Json {
        match self {
            SqlValue::Null => Json::Null,
            SqlValue::Int(v) => Json::from(*v),
            SqlValue::UInt(v) | SqlValue::Bit(v) => Json::from(*v),
            SqlValue::Float(v) => Json::from(f64::from(*v)),
            SqlValue::Double(v) => Json::from(*v),
            SqlValue::Year(v) => Json::from(*v),
            SqlValue::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
            SqlValue::Decimal(s)
            | SqlValue::Text(s)
            | SqlValue::Date(s)
            | SqlValue::DateTime(s)
            | SqlValue::Timestamp(s)
            | SqlValue::Time(s)
            | SqlValue::Enum(s)
            | SqlValue::Set(s)
            | SqlValue::Json(s) => Json::String(s.clone()),
        }
    }

    /// Reads a wire value back, checking it fits the column type.
    pub fn from_json(ty: &ColumnType, v: &Json) -> Result<SqlValue, ValueError> {
        if v.is_null() {
            return Ok(SqlValue::Null);
        }
        let bad = || ValueError { value: truncate(&v.to_string()), expected: format!("{ty:?}") };
        let string = || v.as_str().map(str::to_owned).ok_or_else(bad);
        Ok(match ty {
            ColumnType::Int { unsigned: false, .. } => SqlValue::Int(v.as_i64().ok_or_else(bad)?),
            ColumnType::Int { unsigned: true, .. } => SqlValue::UInt(v.as_u64().ok_or_else(bad)?),
            ColumnType::Float => SqlValue::Float(v.as_f64().ok_or_else(bad)? as f32),
            ColumnType::Double => SqlValue::Double(v.as_f64().ok_or_else(bad)?),
            ColumnType::Decimal { .. } => SqlValue::Decimal(string()?),
            ColumnType::Text { .. } => SqlValue::Text(string()?),
            ColumnType::Binary => SqlValue::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().ok_or_else(bad)?)
                    .map_err(|_| bad())?,
            ),
            ColumnType::Date => SqlValue::Date(string()?),
            ColumnType::DateTime { .. } => SqlValue::DateTime(string()?),
            ColumnType::Timestamp { .. } => SqlValue::Timestamp(string()?),
            ColumnType::Time { .. } => SqlValue::Time(string()?),
            ColumnType::Year => {
                SqlValue::Year(v.as_u64().and_then(|y| u16::try_from(y).ok()).ok_or_else(bad)?)
            }
            ColumnType::Enum { .. } => SqlValue::Enum(string()?),
            ColumnType::Set { .. } => SqlValue::Set(string()?),
            ColumnType::Bit { .. } => SqlValue::Bit(v.as_u64().ok_or_else(bad)?),
            ColumnType::Json => SqlValue::Json(string()?),
        })
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= 64 {
        return s.to_owned();
    }
    let mut end = 64;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Canonical `HH:MM:SS[.f]`-style fraction: `fsp` digits of `micros`.
fn fraction(micros: u32, fsp: u8) -> String {
    if fsp == 0 {
        return String::new();
    }
    let digits = format!("{micros:06}");
    format!(".{}", &digits[..usize::from(fsp.min(6))])
}

/// `YYYY-MM-DD`
pub fn format_date(y: u16, m: u8, d: u8) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SS[.f]` with exactly `fsp` fractional digits.
#[allow(clippy::too_many_arguments)]
pub fn format_datetime(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, micros: u32, fsp: u8) -> String {
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{}", fraction(micros, fsp))
}

/// `[-]HH:MM:SS[.f]`, hours may exceed 24 (TIME ranges over ±838:59:59).
pub fn format_time(negative: bool, hours: u32, mi: u8, s: u8, micros: u32, fsp: u8) -> String {
    let sign = if negative { "-" } else { "" };
    format!("{sign}{hours:02}:{mi:02}:{s:02}{}", fraction(micros, fsp))
}

/// A wire DATETIME/TIMESTAMP as a MySQL literal: `2024-02-29T13:14:15.5Z` -> `2024-02-29
/// 13:14:15.5` (TIMESTAMPs are written by sessions that run in UTC).
pub fn mysql_datetime_literal(s: &str) -> String {
    s.trim_end_matches('Z').replacen('T', " ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ty: ColumnType, v: SqlValue) {
        let j = v.to_json();
        let text = serde_json::to_string(&j).unwrap();
        let back: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(SqlValue::from_json(&ty, &back).unwrap(), v, "{ty:?} via {text}");
    }

    #[test]
    fn extremes_round_trip_exactly() {
        round_trip(ColumnType::Int { bytes: 8, unsigned: true }, SqlValue::UInt(u64::MAX));
        round_trip(ColumnType::Int { bytes: 8, unsigned: false }, SqlValue::Int(i64::MIN));
        round_trip(ColumnType::Double, SqlValue::Double(-1.7976931348623157e308));
        round_trip(ColumnType::Double, SqlValue::Double(-1.5e-10));
        round_trip(ColumnType::Float, SqlValue::Float(2.7182817));
        round_trip(ColumnType::Float, SqlValue::Float(f32::MAX));
        round_trip(ColumnType::Binary, SqlValue::Bytes((0..=255).collect()));
        round_trip(ColumnType::Bit { width: 64 }, SqlValue::Bit(u64::MAX));
        round_trip(ColumnType::Year, SqlValue::Year(0));
        round_trip(
            ColumnType::Decimal { precision: 65, scale: 30 },
            SqlValue::Decimal("-99999999999999999999999999999999999.999999999999999999999999999999".into()),
        );
        round_trip(ColumnType::Int { bytes: 1, unsigned: false }, SqlValue::Null);
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let e = SqlValue::from_json(&ColumnType::Int { bytes: 4, unsigned: true }, &Json::from(-1));
        assert!(e.is_err());
        assert!(SqlValue::from_json(&ColumnType::Binary, &Json::from("not base64!")).is_err());
        assert!(SqlValue::from_json(&ColumnType::Year, &Json::from(70000)).is_err());
    }

    #[test]
    fn temporal_formats_keep_fractional_digits() {
        assert_eq!(format_datetime(2024, 2, 29, 13, 14, 15, 123456, 6), "2024-02-29T13:14:15.123456");
        assert_eq!(format_datetime(2024, 2, 29, 13, 14, 15, 120000, 2), "2024-02-29T13:14:15.12");
        assert_eq!(format_datetime(0, 0, 0, 0, 0, 0, 0, 0), "0000-00-00T00:00:00");
        assert_eq!(format_time(true, 838, 59, 59, 0, 0), "-838:59:59");
        assert_eq!(format_time(true, 0, 0, 1, 500000, 1), "-00:00:01.5");
        assert_eq!(format_date(1000, 1, 1), "1000-01-01");
    }
}
