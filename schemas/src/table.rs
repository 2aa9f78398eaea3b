//! The table model that travels with DDL and row batches.

use crate::value::ColumnType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A table (or view) by database and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub struct TableRef {
    pub database: String,
    pub table: String,
}

impl TableRef {
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        Self { database: database.into(), table: table.into() }
    }
    /// `` `db`.`table` `` with backticks escaped, ready for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.database), quote_ident(&self.table))
    }
}

/// `db.table`, for humans and map keys.
impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// Quotes a MySQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ColumnDef {
    pub name: String,
    /// The type as the source spells it, e.g. `int(10) unsigned`, `varchar(20)`.
    pub sql_type: String,
    pub column_type: ColumnType,
    pub nullable: bool,
    /// Generated (virtual or stored) columns are computed by the target, never written.
    #[serde(default)]
    pub generated: bool,
}

/// Which key a table's rows are identified and chunked by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Primary,
    /// A unique key whose columns are all NOT NULL.
    UniqueNotNull,
    /// Neither: the table is copied whole.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TableSchema {
    pub table: TableRef,
    pub columns: Vec<ColumnDef>,
    pub key_kind: KeyKind,
    /// Columns of the identifying key, in key order (empty for [`KeyKind::None`]).
    pub key: Vec<String>,
    /// Every unique key (including the primary key), by column names.
    pub unique_keys: Vec<Vec<String>>,
}

impl TableSchema {
    /// Columns that carry data (generated ones excluded), in table order.
    pub fn stored_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| !c.generated)
    }
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}
