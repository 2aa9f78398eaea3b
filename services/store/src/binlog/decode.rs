//! Binlog row values to exact wire values, interpreted with the column's schema version.
//!
//! Without `binlog_row_metadata=FULL` the binlog carries no column names, no signedness, no
//! ENUM/SET labels and no JSON-ness, and mysql_common 0.37 decodes some types wrong. Every cell is
//! therefore decoded with the [`ColumnDef`] of the schema version the row was written under:
//! - integers are re-read from their stored bits: negative signed MEDIUMINT comes zero-extended
//!   (mysql_common bug), UNSIGNED values come as negative signed ones without metadata;
//! - YEAR 0000 comes as 1900 (mysql_common always adds 1900; 1900 itself is not a valid YEAR);
//! - TIMESTAMP comes as epoch seconds text, turned into a UTC instant (0 is the zero TIMESTAMP);
//! - ENUM comes as its 1-based index, SET as a bitmask, BIT as big-endian bytes;
//! - text comes in the column's charset (MySQL `latin1` is Windows-1252) and is turned into UTF-8;
//! - BINARY(n) comes without its trailing 0x00 padding, which is put back;
//! - MySQL JSON comes as JSONB and is rendered as JSON text; partial JSON updates are refused.

use ferry_schemas::table::ColumnDef;
use ferry_schemas::value::{format_date, format_datetime, format_time, ColumnType, SqlValue};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value;

/// Decodes one cell. `Err` names what did not fit, for an error report on the column.
pub fn decode(column: &ColumnDef, value: BinlogValue<'_>) -> Result<SqlValue, String> {
    let value = Value::try_from(value).map_err(|e| format!("column {}: {e}", column.name))?;
    let decoded =
        decode_value(&column.column_type, value).map_err(|e| format!("column {}: {e}", column.name))?;
    Ok(match (decoded, binary_width(&column.sql_type)) {
        (SqlValue::Bytes(mut b), Some(n)) if b.len() < n => {
            b.resize(n, 0);
            SqlValue::Bytes(b)
        }
        (other, _) => other,
    })
}

/// `n` of a `binary(n)` column.
fn binary_width(sql_type: &str) -> Option<usize> {
    let t = sql_type.trim().to_ascii_lowercase();
    t.strip_prefix("binary(")?.strip_suffix(')')?.parse().ok()
}

fn decode_value(ty: &ColumnType, v: Value) -> Result<SqlValue, String> {
    use ColumnType as T;
    let bad = |v: &Value| format!("binlog value {v:?} does not fit {ty:?}");
    Ok(match (ty, v) {
        (_, Value::NULL) => SqlValue::Null,
        (T::Int { bytes, unsigned }, v @ (Value::Int(_) | Value::UInt(_))) => {
            int_from_bits(*bytes, *unsigned, &v)
        }
        (T::Float, Value::Float(f)) => SqlValue::Float(f),
        (T::Float, Value::Double(d)) => SqlValue::Float(d as f32),
        (T::Double, Value::Double(d)) => SqlValue::Double(d),
        (T::Decimal { .. }, Value::Bytes(b)) => {
            SqlValue::Decimal(String::from_utf8(b).map_err(|e| e.to_string())?)
        }
        (T::Text { charset }, Value::Bytes(b)) => SqlValue::Text(to_utf8(charset, b)?),
        (T::Binary, Value::Bytes(b)) => SqlValue::Bytes(b),
        (T::Date, Value::Date(y, m, d, ..)) => SqlValue::Date(format_date(y, m, d)),
        (T::DateTime { fsp }, Value::Date(y, mo, d, h, mi, s, us)) => {
            SqlValue::DateTime(format_datetime(y, mo, d, h, mi, s, us, *fsp))
        }
        (T::Timestamp { fsp }, Value::Bytes(b)) => SqlValue::Timestamp(timestamp_from_epoch(&b, *fsp)?),
        (T::Time { fsp }, Value::Time(neg, days, h, mi, s, us)) => {
            SqlValue::Time(format_time(neg, days * 24 + u32::from(h), mi, s, us, *fsp))
        }
        (T::Year, v) => SqlValue::Year(year(&v).ok_or_else(|| bad(&v))?),
        (T::Enum { labels }, v @ (Value::Int(_) | Value::UInt(_))) => {
            let idx = as_u64(&v);
            match idx {
                0 => SqlValue::Enum(String::new()),
                i => SqlValue::Enum(labels.get(i as usize - 1).cloned().ok_or_else(|| bad(&v))?),
            }
        }
        (T::Set { labels }, v) => {
            let bits = match &v {
                Value::Bytes(b) if b.len() <= 8 => {
                    b.iter().rev().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
                }
                Value::Int(_) | Value::UInt(_) => as_u64(&v),
                _ => return Err(bad(&v)),
            };
            let names: Vec<&str> = labels
                .iter()
                .enumerate()
                .filter(|(i, _)| bits >> i & 1 == 1)
                .map(|(_, l)| l.as_str())
                .collect();
            SqlValue::Set(names.join(","))
        }
        (T::Bit { .. }, Value::Bytes(b)) if b.len() <= 8 => {
            SqlValue::Bit(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
        }
        (T::Json, Value::Bytes(b)) => SqlValue::Json(String::from_utf8(b).map_err(|e| e.to_string())?),
        (_, v) => return Err(bad(&v)),
    })
}

fn as_u64(v: &Value) -> u64 {
    match v {
        Value::Int(i) => *i as u64,
        Value::UInt(u) => *u,
        _ => 0,
    }
}

/// Reinterprets the stored bits of a `bytes`-wide integer by the column's signedness, whatever
/// mysql_common made of them (zero- or sign-extended, signed or unsigned).
fn int_from_bits(bytes: u8, unsigned: bool, v: &Value) -> SqlValue {
    let width = u32::from(bytes.clamp(1, 8)) * 8;
    let raw = as_u64(v);
    let bits = if width == 64 { raw } else { raw & ((1u64 << width) - 1) };
    if unsigned {
        SqlValue::UInt(bits)
    } else if width == 64 {
        SqlValue::Int(bits as i64)
    } else {
        let shift = 64 - width;
        SqlValue::Int(((bits << shift) as i64) >> shift)
    }
}

/// YEAR arrives as text (`"2024"`) with 0000 shown as 1900, or as an integer.
fn year(v: &Value) -> Option<u16> {
    let y: u16 = match v {
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok()?,
        Value::Int(i) => u16::try_from(*i).ok()?,
        Value::UInt(u) => u16::try_from(*u).ok()?,
        _ => return None,
    };
    Some(if y == 1900 { 0 } else { y })
}

/// `"1709212455.123000"` -> `2024-02-29T13:14:15.123Z`; `"0"` -> the zero TIMESTAMP.
fn timestamp_from_epoch(b: &[u8], fsp: u8) -> Result<String, String> {
    let text = std::str::from_utf8(b).map_err(|e| e.to_string())?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().map_err(|_| format!("bad TIMESTAMP {text}"))?;
    let micros: u32 = format!("{frac:0<6}")[..6].parse().map_err(|_| format!("bad TIMESTAMP {text}"))?;
    if secs == 0 && micros == 0 {
        return Ok(format!("{}Z", format_datetime(0, 0, 0, 0, 0, 0, 0, fsp)));
    }
    let t = chrono::DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| format!("TIMESTAMP {text} out of range"))?
        .naive_utc();
    use chrono::{Datelike, Timelike};
    let (y, mo, d) = (t.year() as u16, t.month() as u8, t.day() as u8);
    let (h, mi, s) = (t.hour() as u8, t.minute() as u8, t.second() as u8);
    Ok(format!("{}Z", format_datetime(y, mo, d, h, mi, s, micros, fsp)))
}

/// Windows-1252 (MySQL's `latin1`) for 0x80..=0x9F; the rest of latin1 is Unicode's first 256.
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

fn to_utf8(charset: &str, b: Vec<u8>) -> Result<String, String> {
    match charset {
        "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => {
            String::from_utf8(b).map_err(|e| format!("invalid {charset} text: {e}"))
        }
        "latin1" => {
            Ok(b.iter()
                .map(|&x| {
                    if (0x80..0xA0).contains(&x) {
                        CP1252_HIGH[usize::from(x - 0x80)]
                    } else {
                        char::from(x)
                    }
                })
                .collect())
        }
        other => Err(format!("character set {other} is not supported by the binlog decoder yet")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColumnType) -> ColumnDef {
        ColumnDef {
            name: "c".into(),
            sql_type: String::new(),
            column_type: ty,
            nullable: true,
            generated: false,
        }
    }
    fn dec(ty: ColumnType, v: Value) -> SqlValue {
        decode(&col(ty), BinlogValue::Value(v)).unwrap()
    }
    fn int(bytes: u8, unsigned: bool) -> ColumnType {
        ColumnType::Int { bytes, unsigned }
    }

    #[test]
    fn integers_follow_the_schema_not_the_decoder() {
        // What mysql_common 0.37 yields, per the library notes.
        assert_eq!(dec(int(3, false), Value::Int(16_777_215)), SqlValue::Int(-1));
        assert_eq!(dec(int(3, false), Value::Int(8_388_608)), SqlValue::Int(-8_388_608));
        assert_eq!(dec(int(3, false), Value::Int(8_388_607)), SqlValue::Int(8_388_607));
        assert_eq!(dec(int(3, true), Value::Int(16_777_215)), SqlValue::UInt(16_777_215));
        assert_eq!(dec(int(1, true), Value::Int(-1)), SqlValue::UInt(255));
        assert_eq!(dec(int(2, true), Value::Int(-1)), SqlValue::UInt(65_535));
        assert_eq!(dec(int(4, true), Value::Int(-1)), SqlValue::UInt(4_294_967_295));
        assert_eq!(dec(int(8, true), Value::Int(-1)), SqlValue::UInt(u64::MAX));
        assert_eq!(dec(int(8, true), Value::UInt(u64::MAX)), SqlValue::UInt(u64::MAX));
        assert_eq!(dec(int(8, false), Value::Int(i64::MIN)), SqlValue::Int(i64::MIN));
        assert_eq!(dec(int(1, false), Value::Int(-128)), SqlValue::Int(-128));
        assert_eq!(dec(int(4, false), Value::Int(0)), SqlValue::Int(0));
        // A fixed decoder (sign-extended MEDIUMINT) reads the same.
        assert_eq!(dec(int(3, false), Value::Int(-1)), SqlValue::Int(-1));
        assert_eq!(dec(int(3, true), Value::Int(-1)), SqlValue::UInt(16_777_215));
    }

    #[test]
    fn temporal_values() {
        assert_eq!(dec(ColumnType::Year, Value::Bytes(b"1900".to_vec())), SqlValue::Year(0));
        assert_eq!(dec(ColumnType::Year, Value::Bytes(b"2155".to_vec())), SqlValue::Year(2155));
        let ts = ColumnType::Timestamp { fsp: 3 };
        assert_eq!(
            dec(ts.clone(), Value::Bytes(b"1709212455.123000".to_vec())),
            SqlValue::Timestamp("2024-02-29T13:14:15.123Z".into())
        );
        assert_eq!(
            dec(ts.clone(), Value::Bytes(b"0".to_vec())),
            SqlValue::Timestamp("0000-00-00T00:00:00.000Z".into())
        );
        assert_eq!(
            dec(ColumnType::Timestamp { fsp: 0 }, Value::Bytes(b"2147483647".to_vec())),
            SqlValue::Timestamp("2038-01-19T03:14:07Z".into())
        );
        let dt = ColumnType::DateTime { fsp: 6 };
        assert_eq!(
            dec(dt, Value::Date(9999, 12, 31, 23, 59, 59, 999_999)),
            SqlValue::DateTime("9999-12-31T23:59:59.999999".into())
        );
        assert_eq!(
            dec(ColumnType::Date, Value::Date(0, 0, 0, 0, 0, 0, 0)),
            SqlValue::Date("0000-00-00".into())
        );
        let t = ColumnType::Time { fsp: 1 };
        assert_eq!(dec(t, Value::Time(true, 0, 0, 0, 1, 500_000)), SqlValue::Time("-00:00:01.5".into()));
        assert_eq!(
            dec(ColumnType::Time { fsp: 0 }, Value::Time(true, 34, 22, 59, 59, 0)),
            SqlValue::Time("-838:59:59".into())
        );
    }

    #[test]
    fn binary_columns_get_their_padding_back() {
        let c = ColumnDef {
            name: "b".into(),
            sql_type: "binary(4)".into(),
            column_type: ColumnType::Binary,
            nullable: true,
            generated: false,
        };
        assert_eq!(
            decode(&c, BinlogValue::Value(Value::Bytes(vec![1, 2]))).unwrap(),
            SqlValue::Bytes(vec![1, 2, 0, 0])
        );
        let vb = ColumnDef { sql_type: "varbinary(4)".into(), ..c };
        assert_eq!(decode(&vb, BinlogValue::Value(Value::Bytes(vec![1]))).unwrap(), SqlValue::Bytes(vec![1]));
    }

    #[test]
    fn labels_bits_and_text() {
        let e = ColumnType::Enum { labels: vec!["a".into(), "b".into(), "c".into()] };
        assert_eq!(dec(e.clone(), Value::Int(2)), SqlValue::Enum("b".into()));
        assert_eq!(dec(e.clone(), Value::Int(0)), SqlValue::Enum(String::new()));
        assert!(decode(&col(e), BinlogValue::Value(Value::Int(4))).is_err());
        let s = ColumnType::Set { labels: vec!["x".into(), "y".into(), "z".into()] };
        assert_eq!(dec(s.clone(), Value::Bytes(vec![0x05])), SqlValue::Set("x,z".into()));
        assert_eq!(dec(s, Value::Bytes(vec![0x00])), SqlValue::Set(String::new()));
        assert_eq!(dec(ColumnType::Bit { width: 10 }, Value::Bytes(vec![0x02, 0xaa])), SqlValue::Bit(0x2aa));
        assert_eq!(dec(ColumnType::Bit { width: 64 }, Value::Bytes(vec![0xff; 8])), SqlValue::Bit(u64::MAX));
        let latin1 = ColumnType::Text { charset: "latin1".into() };
        assert_eq!(dec(latin1, Value::Bytes(vec![0xe9, 0x80, 0xff])), SqlValue::Text("é€ÿ".into()));
        let utf8 = ColumnType::Text { charset: "utf8mb4".into() };
        assert_eq!(
            dec(utf8.clone(), Value::Bytes("héllo 😀".as_bytes().to_vec())),
            SqlValue::Text("héllo 😀".into())
        );
        assert!(decode(&col(utf8), BinlogValue::Value(Value::Bytes(vec![0xff]))).is_err());
        assert_eq!(
            dec(ColumnType::Decimal { precision: 20, scale: 6 }, Value::Bytes(b"-0.500000".to_vec())),
            SqlValue::Decimal("-0.500000".into())
        );
        assert_eq!(
            dec(ColumnType::Json, Value::Bytes(br#"{"a":[1]}"#.to_vec())),
            SqlValue::Json(r#"{"a":[1]}"#.into())
        );
        assert_eq!(dec(ColumnType::Binary, Value::NULL), SqlValue::Null);
        assert_eq!(
            dec(ColumnType::Double, Value::Double(-1.797_693_134_862_315_7e308)),
            SqlValue::Double(f64::MIN)
        );
    }
}
