//! Which tables and views a task copies, with their schema and target names.

use crate::error::{definite, FullError};
use ferry_mysql::catalog::{self, ObjectKind};
use ferry_schemas::table::{TableRef, TableSchema};
use ferry_schemas::task::TaskSpec;
use mysql_async::Conn;

pub struct TablePlan {
    pub source: TableRef,
    pub target: TableRef,
    pub schema: TableSchema,
    pub estimated_rows: u64,
}

pub struct ViewPlan {
    pub source: TableRef,
    pub target: TableRef,
}

pub struct Plan {
    pub tables: Vec<TablePlan>,
    pub views: Vec<ViewPlan>,
}

/// Reads the catalog. Unsupported objects or column types are a definite error (the precheck
/// reports them first; this guards against a schema change in between).
pub async fn build(conn: &mut Conn, spec: &TaskSpec) -> Result<Plan, FullError> {
    let objects = catalog::list_objects(conn, &spec.objects).await?;
    let mut tables = Vec::new();
    let mut views = Vec::new();
    for o in objects {
        let target = spec.renames.target_of(&o.table);
        match o.kind {
            ObjectKind::Table => {
                let (schema, unsupported) = catalog::read_table(conn, &o.table).await?;
                if let Some(u) = unsupported.first() {
                    return Err(definite(
                        "unsupported_type",
                        Some(u.object()),
                        u.message(),
                        ferry_mysql::catalog::UnsupportedColumn::FIX,
                    ));
                }
                tables.push(TablePlan { source: o.table, target, schema, estimated_rows: o.estimated_rows });
            }
            ObjectKind::View if spec.full.views => views.push(ViewPlan { source: o.table, target }),
            ObjectKind::View => {}
            ObjectKind::Other(kind) => {
                return Err(definite(
                    "unsupported_object",
                    Some(o.table.to_string()),
                    format!("{} is a {kind}, which Ferry does not migrate", o.table),
                    "exclude it in objects.exclude",
                ))
            }
        }
    }
    if tables.is_empty() && views.is_empty() {
        return Err(definite(
            "nothing_selected",
            None,
            format!("no source table matches objects.include {:?}", spec.objects.include),
            "check the patterns and that the user can see the tables (SHOW GRANTS)",
        ));
    }
    Ok(Plan { tables, views })
}
