//! Scenario folders (`tests/scenarios/<name>/`): SQL to prepare the source and a task spec,
//! with `{{placeholders}}` filled in per test so tests never share databases or task names.

use crate::harness::{admin, endpoint, workspace};
use anyhow::{Context, Result};
use mysql_async::prelude::*;
use std::collections::HashMap;

pub struct Scenario {
    pub dir: std::path::PathBuf,
    pub vars: HashMap<String, String>,
}

impl Scenario {
    /// `db` and `task` are the test's own names.
    pub fn new(name: &str, db: &str, task: &str) -> Result<Self> {
        let (sh, sp, su, spw) = endpoint("source")?;
        let (th, tp, tu, tpw) = endpoint("target")?;
        let vars: HashMap<String, String> = [
            ("db", db.to_owned()),
            ("task", task.to_owned()),
            ("source_host", sh),
            ("source_port", sp.to_string()),
            ("source_user", su),
            ("source_password", spw),
            ("target_host", th),
            ("target_port", tp.to_string()),
            ("target_user", tu),
            ("target_password", tpw),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(Self { dir: workspace().join("tests").join("scenarios").join(name), vars })
    }

    pub fn render(&self, file: &str) -> Result<String> {
        let mut text =
            std::fs::read_to_string(self.dir.join(file)).with_context(|| format!("reading {file}"))?;
        for (k, v) in &self.vars {
            text = text.replace(&format!("{{{{{k}}}}}"), v);
        }
        Ok(text)
    }

    pub async fn prepare_source(&self) -> Result<()> {
        let sql = self.render("prepare_source.sql")?;
        let mut conn = admin("source").await?;
        conn.query_drop(sql).await.context("running prepare_source.sql")?;
        Ok(())
    }
}
