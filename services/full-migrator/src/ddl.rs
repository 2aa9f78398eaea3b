//! Rewrites source DDL for the target: table and view names mapped by the task's renames,
//! foreign-key references mapped too, view DEFINER clauses removed (the definer rarely exists
//! on the target; the view then runs as its creator).

use ferry_schemas::table::TableRef;
use ferry_schemas::task::Renames;

/// One lexical piece of a statement: a backtick identifier or anything else.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Ident(String),
    Other(&'a str),
}

/// Splits SQL into backtick identifiers and the rest, leaving string literals untouched.
fn pieces(sql: &str) -> Vec<Piece<'_>> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let q = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'`' => {
                if start < i {
                    out.push(Piece::Other(&sql[start..i]));
                }
                let mut ident = String::new();
                let mut j = i + 1;
                while j < bytes.len() {
                    if bytes[j] == b'`' {
                        if bytes.get(j + 1) == Some(&b'`') {
                            ident.push('`');
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    let ch_len = utf8_len(bytes[j]);
                    ident.push_str(&sql[j..(j + ch_len).min(sql.len())]);
                    j += ch_len;
                }
                out.push(Piece::Ident(ident));
                i = j + 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < sql.len() {
        out.push(Piece::Other(&sql[start.min(sql.len())..]));
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn q(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// Renders pieces back, mapping every `db`.`table` pair (and a bare table after REFERENCES,
/// which lives in `default_db`) through `map`.
fn render(pieces: &[Piece<'_>], default_db: &str, map: &dyn Fn(&TableRef) -> Option<TableRef>) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < pieces.len() {
        match &pieces[i] {
            Piece::Ident(a) => {
                if let (Some(Piece::Other(".")), Some(Piece::Ident(b))) =
                    (pieces.get(i + 1), pieces.get(i + 2))
                {
                    if let Some(t) = map(&TableRef::new(a.clone(), b.clone())) {
                        out.push_str(&format!("{}.{}", q(&t.database), q(&t.table)));
                        i += 3;
                        continue;
                    }
                }
                let after_references = i > 0
                    && matches!(&pieces[i - 1], Piece::Other(s) if s.trim_end().to_ascii_uppercase().ends_with("REFERENCES"));
                match map(&TableRef::new(default_db, a.clone())).filter(|_| after_references) {
                    Some(t) => out.push_str(&format!("{}.{}", q(&t.database), q(&t.table))),
                    None => out.push_str(&q(a)),
                }
            }
            Piece::Other(s) => out.push_str(s),
        }
        i += 1;
    }
    out
}

/// `CREATE TABLE` for the target from the source's `SHOW CREATE TABLE`.
pub fn table_ddl(source_ddl: &str, source: &TableRef, target: &TableRef, renames: &Renames) -> String {
    let ps = pieces(source_ddl);
    // The first identifier is the table name (SHOW CREATE TABLE never qualifies it).
    let mut out = String::new();
    let mut rest_start = 0;
    for (i, p) in ps.iter().enumerate() {
        if let Piece::Ident(_) = p {
            out.push_str(&format!("{}.{}", q(&target.database), q(&target.table)));
            rest_start = i + 1 + qualified_tail(&ps[i + 1..]);
            break;
        }
        if let Piece::Other(s) = p {
            out.push_str(s);
        }
    }
    let map = |t: &TableRef| Some(renames.target_of(t));
    out.push_str(&render(&ps[rest_start..], &source.database, &map));
    out
}

/// Splits the non-unique secondary indexes out of a `SHOW CREATE TABLE` text (one definition
/// per line), so they can be built after the load. Tables with foreign keys keep every index:
/// InnoDB needs an index on foreign-key columns at creation.
pub fn split_secondary_indexes(ddl: &str) -> (String, Vec<String>) {
    if ddl.lines().any(|l| l.trim_start().starts_with("CONSTRAINT") && l.contains("FOREIGN KEY")) {
        return (ddl.to_owned(), Vec::new());
    }
    let is_secondary = |l: &str| {
        let t = l.trim_start();
        t.starts_with("KEY `") || t.starts_with("FULLTEXT KEY `") || t.starts_with("SPATIAL KEY `")
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut deferred = Vec::new();
    for line in ddl.lines() {
        if is_secondary(line) {
            deferred.push(line.trim().trim_end_matches(',').to_owned());
        } else {
            kept.push(line);
        }
    }
    if deferred.is_empty() {
        return (ddl.to_owned(), deferred);
    }
    // The line before the closing `)` must not end with a comma any more.
    if let Some(close) = kept.iter().position(|l| l.starts_with(')')) {
        if close > 0 {
            let fixed = kept[close - 1].trim_end_matches(',');
            let mut out: Vec<String> = kept.iter().map(|l| (*l).to_owned()).collect();
            out[close - 1] = fixed.to_owned();
            return (out.join("\n"), deferred);
        }
    }
    (ddl.to_owned(), Vec::new())
}

/// `CREATE VIEW` for the target from `SHOW CREATE VIEW`: DEFINER dropped, names mapped.
pub fn view_ddl(source_ddl: &str, source: &TableRef, target: &TableRef, renames: &Renames) -> String {
    let without_definer = strip_definer(source_ddl);
    let ps = pieces(&without_definer);
    let mut out = String::new();
    let mut i = 0;
    // Up to and including the view name after the VIEW keyword.
    while i < ps.len() {
        match &ps[i] {
            Piece::Other(s) => out.push_str(s),
            Piece::Ident(_) => {
                out.push_str(&format!("{}.{}", q(&target.database), q(&target.table)));
                i += 1 + qualified_tail(&ps[i + 1..]);
                break;
            }
        }
        i += 1;
    }
    let map = |t: &TableRef| {
        if renames.databases.contains_key(&t.database) || renames.tables.contains_key(&t.to_string()) {
            Some(renames.target_of(t))
        } else {
            None
        }
    };
    out.push_str(&render(&ps[i..], &source.database, &map));
    out
}

/// 2 when the pieces continue a qualified name (`.` then an identifier), else 0.
fn qualified_tail(rest: &[Piece<'_>]) -> usize {
    match rest {
        [Piece::Other("."), Piece::Ident(_), ..] => 2,
        _ => 0,
    }
}

fn strip_definer(sql: &str) -> String {
    let upper = sql.to_ascii_uppercase();
    let Some(start) = upper.find("DEFINER=") else { return sql.to_owned() };
    // DEFINER=`user`@`host` followed by a space.
    let bytes = sql.as_bytes();
    let mut i = start + "DEFINER=".len();
    let mut in_quote = false;
    while i < bytes.len() {
        match bytes[i] {
            b'`' => in_quote = !in_quote,
            b' ' if !in_quote => break,
            _ => {}
        }
        i += 1;
    }
    format!("{}{}", &sql[..start], sql[i..].trim_start())
}

/// Source views that a view's definition refers to (for creation order).
pub fn referenced_tables(ddl: &str) -> Vec<TableRef> {
    let ps = pieces(ddl);
    let mut out = Vec::new();
    for w in ps.windows(3) {
        if let [Piece::Ident(a), Piece::Other("."), Piece::Ident(b)] = w {
            out.push(TableRef::new(a.clone(), b.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renames() -> Renames {
        Renames {
            databases: [("shop".to_string(), "shop2".to_string())].into(),
            tables: [("shop.orders".to_string(), "shop2.orders_v2".to_string())].into(),
        }
    }

    #[test]
    fn table_names_and_references_are_mapped() {
        let ddl = "CREATE TABLE `items` (\n  `id` int(11) NOT NULL,\n  `order_id` int(11) DEFAULT NULL COMMENT 'the `x` ''y''',\n  KEY `fk` (`order_id`),\n  CONSTRAINT `fk` FOREIGN KEY (`order_id`) REFERENCES `orders` (`id`)\n) ENGINE=InnoDB";
        let out =
            table_ddl(ddl, &TableRef::new("shop", "items"), &TableRef::new("shop2", "items"), &renames());
        assert!(out.starts_with("CREATE TABLE `shop2`.`items` ("), "{out}");
        assert!(out.contains("REFERENCES `shop2`.`orders_v2` (`id`)"), "{out}");
        assert!(out.contains("COMMENT 'the `x` ''y'''"), "{out}");
    }

    #[test]
    fn secondary_indexes_are_split_out() {
        let ddl = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL,\n  `c` text,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`c`(10)),\n  KEY `k_1` (`k`),\n  FULLTEXT KEY `ft` (`c`)\n) ENGINE=InnoDB";
        let (base, idx) = split_secondary_indexes(ddl);
        assert_eq!(idx, vec!["KEY `k_1` (`k`)", "FULLTEXT KEY `ft` (`c`)"]);
        assert!(base.contains("UNIQUE KEY `u` (`c`(10))\n) ENGINE=InnoDB"), "{base}");
        let fk = "CREATE TABLE `t` (\n  `a` int,\n  KEY `a` (`a`),\n  CONSTRAINT `f` FOREIGN KEY (`a`) REFERENCES `p` (`id`)\n) ENGINE=InnoDB";
        assert!(split_secondary_indexes(fk).1.is_empty());
    }

    #[test]
    fn views_lose_their_definer_and_follow_renames() {
        let ddl = "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `shop`.`v` AS select `shop`.`orders`.`id` AS `id` from `shop`.`orders`";
        let out = view_ddl(ddl, &TableRef::new("shop", "v"), &TableRef::new("shop2", "v"), &renames());
        assert_eq!(
            out,
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `shop2`.`v` AS select `shop2`.`orders_v2`.`id` AS `id` from `shop2`.`orders_v2`"
        );
        assert!(referenced_tables(ddl).contains(&TableRef::new("shop", "orders")));
    }
}
