//! Exact conversion between mysql_async values and wire values, driven by the column type.
//!
//! Rows are read with the binary protocol, so numbers arrive as machine values (FLOAT and
//! DOUBLE bit-exact), temporal values as their parts (zero dates included) and DECIMAL as its
//! exact text. Sessions run in UTC, so TIMESTAMP parts are a UTC instant.

use ferry_schemas::value::{
    format_date, format_datetime, format_time, mysql_datetime_literal, ColumnType, SqlValue,
};
use mysql_async::Value;

/// Converts one read cell. `Err` carries a message naming what did not fit.
pub fn from_mysql(ty: &ColumnType, v: Value) -> Result<SqlValue, String> {
    use ColumnType as T;
    let bad = |v: &Value| format!("value {v:?} does not fit column type {ty:?}");
    Ok(match (ty, v) {
        (_, Value::NULL) => SqlValue::Null,
        (T::Int { unsigned: false, .. }, Value::Int(i)) => SqlValue::Int(i),
        (T::Int { unsigned: false, .. }, v @ Value::UInt(u)) => {
            SqlValue::Int(i64::try_from(u).map_err(|_| bad(&v))?)
        }
        (T::Int { unsigned: true, .. }, Value::UInt(u)) => SqlValue::UInt(u),
        (T::Int { unsigned: true, .. }, v @ Value::Int(i)) => {
            SqlValue::UInt(u64::try_from(i).map_err(|_| bad(&v))?)
        }
        (T::Int { unsigned, .. }, v @ Value::Bytes(_)) => parse_int(*unsigned, &v).ok_or_else(|| bad(&v))?,
        (T::Float, Value::Float(f)) => SqlValue::Float(f),
        (T::Float, Value::Double(d)) => SqlValue::Float(d as f32),
        (T::Double, Value::Double(d)) => SqlValue::Double(d),
        (T::Double, Value::Float(f)) => SqlValue::Double(f64::from(f)),
        (T::Decimal { .. }, Value::Bytes(b)) => SqlValue::Decimal(utf8(b)?),
        (T::Text { .. }, Value::Bytes(b)) => SqlValue::Text(utf8(b)?),
        (T::Binary, Value::Bytes(b)) => SqlValue::Bytes(b),
        (T::Date, Value::Date(y, m, d, ..)) => SqlValue::Date(format_date(y, m, d)),
        (T::DateTime { fsp }, Value::Date(y, mo, d, h, mi, s, us)) => {
            SqlValue::DateTime(format_datetime(y, mo, d, h, mi, s, us, *fsp))
        }
        (T::Timestamp { fsp }, Value::Date(y, mo, d, h, mi, s, us)) => {
            SqlValue::Timestamp(format!("{}Z", format_datetime(y, mo, d, h, mi, s, us, *fsp)))
        }
        (T::Time { fsp }, Value::Time(neg, days, h, mi, s, us)) => {
            SqlValue::Time(format_time(neg, days * 24 + u32::from(h), mi, s, us, *fsp))
        }
        (T::Year, v @ (Value::Int(_) | Value::UInt(_) | Value::Bytes(_))) => {
            let n = match &v {
                Value::Int(i) => u16::try_from(*i).ok(),
                Value::UInt(u) => u16::try_from(*u).ok(),
                Value::Bytes(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
                _ => None,
            };
            SqlValue::Year(n.ok_or_else(|| bad(&v))?)
        }
        (T::Enum { .. }, Value::Bytes(b)) => SqlValue::Enum(utf8(b)?),
        (T::Set { .. }, Value::Bytes(b)) => SqlValue::Set(utf8(b)?),
        (T::Bit { .. }, Value::Bytes(b)) if b.len() <= 8 => {
            SqlValue::Bit(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
        }
        (T::Bit { .. }, Value::UInt(u)) => SqlValue::Bit(u),
        (T::Bit { .. }, v @ Value::Int(i)) => SqlValue::Bit(u64::try_from(i).map_err(|_| bad(&v))?),
        (T::Json, Value::Bytes(b)) => SqlValue::Json(utf8(b)?),
        (_, v) => return Err(bad(&v)),
    })
}

fn utf8(b: Vec<u8>) -> Result<String, String> {
    String::from_utf8(b).map_err(|e| format!("text is not valid UTF-8 after conversion by the server: {e}"))
}

fn parse_int(unsigned: bool, v: &Value) -> Option<SqlValue> {
    let Value::Bytes(b) = v else { return None };
    let s = std::str::from_utf8(b).ok()?;
    if unsigned {
        s.parse().ok().map(SqlValue::UInt)
    } else {
        s.parse().ok().map(SqlValue::Int)
    }
}

/// A wire value as a statement parameter (used for key bounds). Temporal strings are turned
/// back into MySQL literals; binary values are bound as hex (see [`placeholder`]).
pub fn to_param(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::NULL,
        SqlValue::Int(i) => Value::Int(*i),
        SqlValue::UInt(u) | SqlValue::Bit(u) => Value::UInt(*u),
        SqlValue::Year(y) => Value::UInt(u64::from(*y)),
        SqlValue::Float(f) => Value::Float(*f),
        SqlValue::Double(d) => Value::Double(*d),
        SqlValue::Bytes(b) => Value::Bytes(hex(b).into_bytes()),
        SqlValue::DateTime(s) | SqlValue::Timestamp(s) => {
            Value::Bytes(mysql_datetime_literal(s).into_bytes())
        }
        SqlValue::Decimal(s)
        | SqlValue::Text(s)
        | SqlValue::Date(s)
        | SqlValue::Time(s)
        | SqlValue::Enum(s)
        | SqlValue::Set(s)
        | SqlValue::Json(s) => Value::Bytes(s.clone().into_bytes()),
    }
}

/// The placeholder for a parameter of this column type (binary values travel as hex).
pub fn placeholder(ty: &ColumnType) -> &'static str {
    match ty {
        ColumnType::Binary => "UNHEX(?)",
        _ => "?",
    }
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_protocol_values_convert_exactly() {
        let ts = ColumnType::Timestamp { fsp: 3 };
        assert_eq!(
            from_mysql(&ts, Value::Date(2024, 2, 29, 5, 14, 15, 123000)).unwrap(),
            SqlValue::Timestamp("2024-02-29T05:14:15.123Z".into())
        );
        let t = ColumnType::Time { fsp: 0 };
        assert_eq!(
            from_mysql(&t, Value::Time(true, 34, 22, 59, 59, 0)).unwrap(),
            SqlValue::Time("-838:59:59".into())
        );
        let u = ColumnType::Int { bytes: 8, unsigned: true };
        assert_eq!(from_mysql(&u, Value::UInt(u64::MAX)).unwrap(), SqlValue::UInt(u64::MAX));
        assert!(from_mysql(&u, Value::Int(-1)).is_err());
        let bit = ColumnType::Bit { width: 10 };
        assert_eq!(from_mysql(&bit, Value::Bytes(vec![0x02, 0xaa])).unwrap(), SqlValue::Bit(0x2aa));
        assert_eq!(from_mysql(&ColumnType::Year, Value::Int(0)).unwrap(), SqlValue::Year(0));
        assert!(
            from_mysql(&ColumnType::Text { charset: "utf8mb4".into() }, Value::Bytes(vec![0xff])).is_err()
        );
    }

    #[test]
    fn params_use_mysql_literals() {
        assert_eq!(to_param(&SqlValue::Bytes(vec![0, 255])), Value::Bytes(b"00FF".to_vec()));
        assert_eq!(mysql_datetime_literal("2024-01-02T03:04:05.000001Z"), "2024-01-02 03:04:05.000001");
    }
}
