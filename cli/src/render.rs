//! Text rendering of task views.

use ferry_schemas::check::{CheckReport, DiffKind};
use ferry_schemas::status::{CheckOutcome, TaskStatusView};
use std::fmt::Write;

const BAR: usize = 24;

fn bar(done: u64, total: u64) -> String {
    let frac = if total == 0 { 1.0 } else { (done as f64 / total as f64).min(1.0) };
    let filled = (frac * BAR as f64).round() as usize;
    format!("[{}{}] {:>3.0}%", "#".repeat(filled), "-".repeat(BAR - filled), frac * 100.0)
}

pub fn list(tasks: &[TaskStatusView]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<24} {:<10} {:<12} {:>14}", "TASK", "STATE", "PHASE", "ROWS APPLIED");
    for t in tasks {
        let rows: u64 = t.tables.iter().map(|x| x.rows_applied).sum();
        let phase = t.phase.map(|p| format!("{p:?}").to_lowercase()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<12} {:>14}",
            t.name,
            format!("{:?}", t.state).to_lowercase(),
            phase,
            rows
        );
    }
    out
}

pub fn members(members: &[ferry_schemas::control::Member], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<14} {:<32} {:>6} {:<10} JOBS",
        "REGION", "SERVICE", "INSTANCE", "SEEN", "VERSION"
    );
    for m in members {
        let seen = now.signed_duration_since(m.heartbeat_at).num_seconds().max(0);
        let jobs = if m.jobs.is_empty() { "-".to_owned() } else { m.jobs.join(",") };
        let _ = writeln!(
            out,
            "{:<12} {:<14} {:<32} {:>5}s {:<10} {jobs}",
            m.region, m.service, m.instance, seen, m.version
        );
    }
    out
}

pub fn status(v: &TaskStatusView) -> String {
    let mut out = String::new();
    let phase = v.phase.map(|p| format!("{p:?}").to_lowercase()).unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "task {}: {}, phase {phase}", v.name, format!("{:?}", v.state).to_lowercase());
    if let Some(p0) = &v.p0 {
        let _ = writeln!(out, "  P0 {p0}{}", v.p1.as_ref().map(|p| format!("   P1 {p}")).unwrap_or_default());
    }
    if v.source_position.is_some() || v.incremental.is_some() {
        let captured = v.source_position.as_ref().map_or("-".to_owned(), ToString::to_string);
        let applied = v.applied_position.as_ref().map_or("-".to_owned(), ToString::to_string);
        let delay = v.delay_seconds.map_or("-".to_owned(), |d| format!("{d:.1} s"));
        let _ = writeln!(out, "  captured {captured}   applied {applied}   delay {delay}");
        if let Some(i) = &v.incremental {
            let _ = writeln!(
                out,
                "  incremental: {} transactions, {} rows, {} DDL{}",
                i.transactions,
                i.rows,
                i.ddl,
                if i.safe_mode { " (safe mode until P1)" } else { "" }
            );
            if i.ddl_skipped > 0 {
                let _ = writeln!(out, "  DDL skipped: {}", i.ddl_skipped);
            }
            if let Some(b) = &i.blocked_ddl {
                let _ = writeln!(out, "  stopped at DDL {}: {}", b.position, b.sql);
            }
        }
    }
    if let Some(e) = &v.error {
        let _ = writeln!(out, "  ERROR [{}] {}\n        fix: {}", e.code, e.message, e.fix);
    }
    for r in &v.retrying {
        let _ = writeln!(out, "  retrying [{}] {}", r.code, r.message);
    }
    for c in v.precheck.iter().filter(|c| c.outcome != CheckOutcome::Pass) {
        let _ = writeln!(
            out,
            "  precheck {:?}: {}{}",
            c.outcome,
            c.message,
            c.fix.as_ref().map(|f| format!(" (fix: {f})")).unwrap_or_default()
        );
    }
    let width = v.tables.iter().map(|t| t.source.to_string().len()).max().unwrap_or(5).max(5);
    for t in &v.tables {
        let total = if t.read_done { t.rows_published } else { t.estimated_rows.max(t.rows_published) };
        let _ = writeln!(
            out,
            "  {:<width$} {} {:>10}/{:<10} rows{}",
            t.source.to_string(),
            bar(t.rows_applied, total),
            t.rows_applied,
            total,
            if t.keyless { "  (no key: copied whole)" } else { "" }
        );
    }
    if v.views_published > 0 {
        let _ = writeln!(out, "  views {}/{}", v.views_applied, v.views_published);
    }
    if let Some(c) = &v.check {
        let t = &c.totals;
        let _ = writeln!(
            out,
            "  verification{}: {}, {}/{} tables, {} rows; {} missing, {} extra, {} changed{}",
            if c.live { " (live)" } else { "" },
            if c.done { "done" } else { "running" },
            t.tables,
            c.tables_total,
            t.source_rows,
            t.missing,
            t.extra,
            t.changed,
            if t.problems > 0 { format!(", {} structure differences", t.problems) } else { String::new() }
        );
        if let Some(e) = &c.error {
            let _ = writeln!(out, "  checker ERROR [{}] {}\n        fix: {}", e.code, e.message, e.fix);
        }
    }
    if let Some(w) = &v.watch {
        let _ = writeln!(
            out,
            "  continuous verification: {} row checks, {} different (reported), {} being re-checked",
            w.rows_checked, w.differing, w.pending
        );
        for r in w.rows.iter().take(20) {
            let cols: Vec<&str> = r.diff.columns.iter().map(|c| c.column.as_str()).collect();
            let _ = writeln!(
                out,
                "    {} {:?} key {} {} since {}",
                r.table,
                r.diff.kind,
                serde_json::Value::Array(r.diff.key.clone()),
                cols.join(","),
                r.since.format("%H:%M:%S")
            );
        }
        if let Some(e) = &w.error {
            let _ = writeln!(out, "    waiting: {}", e.message);
        }
    }
    out
}

/// The check report as tables: one line per table, then the differing rows.
pub fn check_report(r: &CheckReport) -> String {
    let mut out = String::new();
    let t = &r.totals;
    let _ = writeln!(
        out,
        "verification of task {}{}: {}; {} tables, {} source rows; {} missing, {} extra, {} changed",
        r.task,
        if r.live { " (live)" } else { "" },
        if r.done { "done" } else { "running" },
        t.tables,
        t.source_rows,
        t.missing,
        t.extra,
        t.changed
    );
    let width = r.tables.iter().map(|t| t.source.to_string().len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        out,
        "{:<width$} {:>12} {:>12} {:>8} {:>8} {:>8}",
        "TABLE", "SOURCE ROWS", "TARGET ROWS", "MISSING", "EXTRA", "CHANGED"
    );
    for c in &r.tables {
        let _ = writeln!(
            out,
            "{:<width$} {:>12} {:>12} {:>8} {:>8} {:>8}{}",
            c.source.to_string(),
            c.source_rows,
            c.target_rows,
            c.missing,
            c.extra,
            c.changed,
            c.problem.as_ref().map(|p| format!("  STRUCTURE: {p}")).unwrap_or_default()
        );
    }
    for c in r.tables.iter().filter(|c| !c.diffs.is_empty()) {
        let _ = writeln!(
            out,
            "\n{} -> {}{}",
            c.source,
            c.target,
            if c.truncated { " (first rows only)" } else { "" }
        );
        for d in &c.diffs {
            let key = serde_json::Value::Array(d.key.clone());
            match d.kind {
                DiffKind::Missing => {
                    let _ = writeln!(out, "  missing  key {key}");
                }
                DiffKind::Extra => {
                    let row = d
                        .target_row
                        .as_ref()
                        .map(|r| format!(" row {}", serde_json::Value::Array(r.clone())))
                        .unwrap_or_default();
                    let _ = writeln!(out, "  extra    key {key}{row}");
                }
                DiffKind::Changed => {
                    let _ = writeln!(out, "  changed  key {key}");
                    for col in &d.columns {
                        let _ = writeln!(
                            out,
                            "           {}: source {} target {}",
                            col.column, col.source, col.target
                        );
                    }
                }
            }
        }
    }
    out
}
