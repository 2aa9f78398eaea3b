//! Multi-row statements with exact parameter binding.

use ferry_schemas::full::BatchColumn;
use ferry_schemas::table::{quote_ident, TableRef};
use ferry_schemas::value::{mysql_datetime_literal, SqlValue};
use sqlx::mysql::MySql;
use sqlx::query_builder::Separated;
use sqlx::QueryBuilder;

/// MySQL's limit on placeholders in one statement.
const MAX_PARAMS: usize = 65_535;
/// Rows per statement beyond which larger statements stop paying off.
const MAX_ROWS_PER_STATEMENT: usize = 1_000;

/// Builds `verb INTO table (cols) VALUES ...` statements covering all rows.
pub fn statements<'a>(
    verb: &str,
    table: &TableRef,
    columns: &[BatchColumn],
    rows: &'a [Vec<SqlValue>],
) -> Vec<QueryBuilder<'a, MySql>> {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let per_statement = (MAX_PARAMS / columns.len().max(1)).clamp(1, MAX_ROWS_PER_STATEMENT);
    rows.chunks(per_statement)
        .map(|chunk| {
            let mut qb = QueryBuilder::new(format!("{verb} INTO {} ({}) ", table.quoted(), cols.join(", ")));
            qb.push_values(chunk, |mut b, row| {
                for v in row {
                    bind(&mut b, v);
                }
            });
            qb
        })
        .collect()
}

/// Binds one value with `$method` (`push_bind` on a builder or a separated list).
macro_rules! bind_value {
    ($target:expr, $method:ident, $v:expr) => {
        match $v {
            SqlValue::Null => $target.$method(None::<&str>),
            SqlValue::Int(i) => $target.$method(*i),
            SqlValue::UInt(u) | SqlValue::Bit(u) => $target.$method(*u),
            SqlValue::Year(y) => $target.$method(*y),
            SqlValue::Float(f) => $target.$method(*f),
            SqlValue::Double(d) => $target.$method(*d),
            SqlValue::Bytes(bytes) => $target.$method(bytes.as_slice()),
            SqlValue::DateTime(s) | SqlValue::Timestamp(s) => $target.$method(mysql_datetime_literal(s)),
            SqlValue::Decimal(s)
            | SqlValue::Text(s)
            | SqlValue::Date(s)
            | SqlValue::Time(s)
            | SqlValue::Enum(s)
            | SqlValue::Set(s)
            | SqlValue::Json(s) => $target.$method(s.as_str()),
        }
    };
}

fn bind<'a>(b: &mut Separated<'_, 'a, MySql, &'static str>, v: &'a SqlValue) {
    bind_value!(b, push_bind, v);
}

/// Appends one bound value to a statement being built.
pub fn push_value<'a>(qb: &mut QueryBuilder<'a, MySql>, v: &'a SqlValue) {
    bind_value!(qb, push_bind, v);
}
