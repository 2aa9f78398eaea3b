//! Exact SQL literals for MySQL-protocol targets, for statements sent as text (multi-statement
//! batches, correction SQL).
//!
//! Every literal reads back as the value it was made from, whatever the session's `sql_mode`
//! (no backslash escapes are relied on): character data is a hex literal with a `_utf8mb4`
//! introducer (converted to the column's character set like a bound parameter), binary data a
//! plain hex literal, floating point in exponent form (a double literal, exact for a FLOAT
//! too), DECIMAL as its digits (an exact decimal literal), temporal values as quoted text in
//! the session time zone (UTC for TIMESTAMP).

use crate::value::{mysql_datetime_literal, SqlValue};
use std::fmt::Write;

/// Appends `v` as an SQL literal.
pub fn push_literal(out: &mut String, v: &SqlValue) {
    match v {
        SqlValue::Null => out.push_str("NULL"),
        SqlValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        SqlValue::UInt(u) | SqlValue::Bit(u) => {
            let _ = write!(out, "{u}");
        }
        SqlValue::Year(y) => {
            let _ = write!(out, "{y}");
        }
        // The f32 widened to f64 is the same number, and a double literal converts to FLOAT
        // without a second rounding.
        SqlValue::Float(f) => push_double(out, f64::from(*f)),
        SqlValue::Double(d) => push_double(out, *d),
        SqlValue::Decimal(s) if is_decimal(s) => out.push_str(s),
        SqlValue::Bytes(b) => push_hex(out, "", b),
        SqlValue::DateTime(s) | SqlValue::Timestamp(s) => {
            let text = mysql_datetime_literal(s);
            if is_temporal(&text) {
                push_quoted_plain(out, &text);
            } else {
                push_hex(out, "_utf8mb4 ", text.as_bytes());
            }
        }
        SqlValue::Date(s) | SqlValue::Time(s) if is_temporal(s) => push_quoted_plain(out, s),
        SqlValue::Decimal(s)
        | SqlValue::Date(s)
        | SqlValue::Time(s)
        | SqlValue::Text(s)
        | SqlValue::Enum(s)
        | SqlValue::Set(s)
        | SqlValue::Json(s) => push_hex(out, "_utf8mb4 ", s.as_bytes()),
    }
}

/// `v` as an SQL literal.
pub fn literal(v: &SqlValue) -> String {
    let mut s = String::new();
    push_literal(&mut s, v);
    s
}

fn push_double(out: &mut String, d: f64) {
    // `{:e}` is the shortest representation that reads back as the same double.
    if d.is_finite() {
        let _ = write!(out, "{d:e}");
    } else {
        out.push_str("NULL");
    }
}

fn push_hex(out: &mut String, introducer: &str, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(introducer.len() + 3 + bytes.len() * 2);
    out.push_str(introducer);
    out.push_str("X'");
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out.push('\'');
}

/// Text that needs no escaping inside single quotes.
fn push_quoted_plain(out: &mut String, s: &str) {
    out.push('\'');
    out.push_str(s);
    out.push('\'');
}

fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

fn is_temporal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_exact_and_need_no_escaping() {
        assert_eq!(literal(&SqlValue::Null), "NULL");
        assert_eq!(literal(&SqlValue::Int(-8_388_608)), "-8388608");
        assert_eq!(literal(&SqlValue::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(literal(&SqlValue::Year(0)), "0");
        assert_eq!(literal(&SqlValue::Double(0.1)), "1e-1");
        assert_eq!(literal(&SqlValue::Double(-1.5e300)), "-1.5e300");
        assert_eq!(literal(&SqlValue::Float(0.1)), format!("{:e}", f64::from(0.1f32)));
        assert_eq!(literal(&SqlValue::Decimal("-12.50".into())), "-12.50");
        assert_eq!(literal(&SqlValue::Decimal("1;DROP".into())), "_utf8mb4 X'313B44524F50'");
        assert_eq!(literal(&SqlValue::Text("it's \\ é".into())), "_utf8mb4 X'69742773205C20C3A9'");
        assert_eq!(literal(&SqlValue::Bytes(vec![0, 255])), "X'00FF'");
        assert_eq!(literal(&SqlValue::Bytes(vec![])), "X''");
        assert_eq!(literal(&SqlValue::DateTime("2024-02-29T12:00:00.5".into())), "'2024-02-29 12:00:00.5'");
        assert_eq!(literal(&SqlValue::Timestamp("1970-01-01T00:00:01Z".into())), "'1970-01-01 00:00:01'");
        assert_eq!(literal(&SqlValue::Time("-838:59:59.000000".into())), "'-838:59:59.000000'");
        assert_eq!(literal(&SqlValue::Json("{\"a\": 1}".into())), "_utf8mb4 X'7B2261223A20317D'");
    }
}
