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

fn bind<'a>(b: &mut Separated<'_, 'a, MySql, &'static str>, v: &'a SqlValue) {
    match v {
        SqlValue::Null => b.push_bind(None::<&str>),
        SqlValue::Int(i) => b.push_bind(*i),
        SqlValue::UInt(u) | SqlValue::Bit(u) => b.push_bind(*u),
        SqlValue::Year(y) => b.push_bind(*y),
        SqlValue::Float(f) => b.push_bind(*f),
        SqlValue::Double(d) => b.push_bind(*d),
        SqlValue::Bytes(bytes) => b.push_bind(bytes.as_slice()),
        SqlValue::DateTime(s) | SqlValue::Timestamp(s) => b.push_bind(mysql_datetime_literal(s)),
        SqlValue::Decimal(s)
        | SqlValue::Text(s)
        | SqlValue::Date(s)
        | SqlValue::Time(s)
        | SqlValue::Enum(s)
        | SqlValue::Set(s)
        | SqlValue::Json(s) => b.push_bind(s.as_str()),
    };
}
