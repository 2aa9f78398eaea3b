//! Which tables a DDL statement from the binlog touches.
//!
//! The binlog carries DDL as SQL text in a QUERY event. The store needs to know which tables'
//! schemas to read again and record in the schema history; the sink runs the statement itself.
//! This is a tokenizer plus a matcher for the table DDL MySQL and MariaDB write to the binlog;
//! everything else (users, grants, databases, views, routines) is [`DdlKind::Other`].

use ferry_schemas::table::TableRef;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DdlKind {
    Create(TableRef),
    Alter {
        table: TableRef,
        renamed_to: Option<TableRef>,
    },
    Drop(Vec<TableRef>),
    Rename(Vec<(TableRef, TableRef)>),
    Truncate(TableRef),
    /// CREATE INDEX / DROP INDEX ... ON table.
    Index(TableRef),
    Other,
}

impl DdlKind {
    /// Every table whose schema may differ after the statement (renamed-away tables included).
    pub fn tables(&self) -> Vec<TableRef> {
        match self {
            DdlKind::Create(t) | DdlKind::Truncate(t) | DdlKind::Index(t) => vec![t.clone()],
            DdlKind::Alter { table, renamed_to } => {
                std::iter::once(table.clone()).chain(renamed_to.clone()).collect()
            }
            DdlKind::Drop(ts) => ts.clone(),
            DdlKind::Rename(pairs) => pairs.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect(),
            DdlKind::Other => Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Punct(char),
}

fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') || c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            // Executable comments (`/*!50100 ... */`) hold real SQL: keep their body.
            let executable = chars.get(i + 2) == Some(&'!');
            i += 2;
            if executable {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                continue;
            }
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '*' && chars.get(i + 1) == Some(&'/') {
            i += 2;
        } else if c == '`' || c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        s.push(c);
                        i += 2;
                        continue;
                    }
                    break;
                }
                if chars[i] == '\\' && c != '`' && i + 1 < chars.len() {
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(if c == '`' { Token::Quoted(s) } else { Token::Punct('\'') });
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    default_db: &'a str,
}

impl Parser<'_> {
    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.pos) {
            Some(Token::Word(w)) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }
    fn eat(&mut self, word: &str) -> bool {
        if self.peek_word().as_deref() == Some(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_seq(&mut self, words: &[&str]) -> bool {
        let save = self.pos;
        if words.iter().all(|w| self.eat(w)) {
            true
        } else {
            self.pos = save;
            false
        }
    }
    fn eat_punct(&mut self, p: char) -> bool {
        if self.tokens.get(self.pos) == Some(&Token::Punct(p)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Option<String> {
        let t = match self.tokens.get(self.pos)? {
            Token::Word(w) | Token::Quoted(w) => w.clone(),
            Token::Punct(_) => return None,
        };
        self.pos += 1;
        Some(t)
    }
    fn table(&mut self) -> Option<TableRef> {
        let first = self.ident()?;
        if self.eat_punct('.') {
            let second = self.ident()?;
            return Some(TableRef::new(first, second));
        }
        Some(TableRef::new(self.default_db, first))
    }
    fn table_list(&mut self) -> Vec<TableRef> {
        let mut out = Vec::new();
        while let Some(t) = self.table() {
            out.push(t);
            if !self.eat_punct(',') {
                break;
            }
        }
        out
    }
    /// Skips to the top-level `RENAME [TO|AS] name` of an ALTER TABLE, if any.
    fn alter_rename(&mut self) -> Option<TableRef> {
        let mut depth = 0i32;
        while self.pos < self.tokens.len() {
            match &self.tokens[self.pos] {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => depth -= 1,
                Token::Word(w) if depth == 0 && w.eq_ignore_ascii_case("RENAME") => {
                    self.pos += 1;
                    // RENAME COLUMN / RENAME INDEX / RENAME KEY are not table renames.
                    if matches!(self.peek_word().as_deref(), Some("COLUMN" | "INDEX" | "KEY")) {
                        continue;
                    }
                    let _ = self.eat("TO") || self.eat("AS");
                    return self.table();
                }
                _ => {}
            }
            self.pos += 1;
        }
        None
    }
}

/// Classifies a statement run with `default_db` as the session's database.
pub fn parse(sql: &str, default_db: &str) -> DdlKind {
    let mut p = Parser { tokens: tokenize(sql), pos: 0, default_db };
    parse_inner(&mut p).unwrap_or(DdlKind::Other)
}

fn parse_inner(p: &mut Parser<'_>) -> Option<DdlKind> {
    if p.eat("CREATE") {
        let _ = p.eat_seq(&["OR", "REPLACE"]);
        let _ = p.eat("TEMPORARY");
        if p.eat("TABLE") {
            let _ = p.eat_seq(&["IF", "NOT", "EXISTS"]);
            return p.table().map(DdlKind::Create);
        }
        let _ = p.eat("UNIQUE") || p.eat("FULLTEXT") || p.eat("SPATIAL");
        if p.eat("INDEX") {
            let _ = p.eat_seq(&["IF", "NOT", "EXISTS"]);
            p.ident()?;
            if p.eat("ON") {
                return p.table().map(DdlKind::Index);
            }
        }
        return None;
    }
    if p.eat("ALTER") {
        let _ = p.eat("ONLINE");
        let _ = p.eat("IGNORE");
        if !p.eat("TABLE") {
            return None;
        }
        let _ = p.eat_seq(&["IF", "EXISTS"]);
        let table = p.table()?;
        let renamed_to = p.alter_rename();
        return Some(DdlKind::Alter { table, renamed_to });
    }
    if p.eat("DROP") {
        let _ = p.eat("TEMPORARY");
        if p.eat("TABLE") {
            let _ = p.eat_seq(&["IF", "EXISTS"]);
            let tables = p.table_list();
            return (!tables.is_empty()).then_some(DdlKind::Drop(tables));
        }
        if p.eat("INDEX") {
            let _ = p.eat_seq(&["IF", "EXISTS"]);
            p.ident()?;
            if p.eat("ON") {
                return p.table().map(DdlKind::Index);
            }
        }
        return None;
    }
    if p.eat("RENAME") {
        if !p.eat("TABLE") {
            return None;
        }
        let mut pairs = Vec::new();
        loop {
            let _ = p.eat_seq(&["IF", "EXISTS"]);
            let from = p.table()?;
            let _ = p.eat("WAIT") || p.eat("NOWAIT");
            if !p.eat("TO") {
                return None;
            }
            pairs.push((from, p.table()?));
            if !p.eat_punct(',') {
                break;
            }
        }
        return Some(DdlKind::Rename(pairs));
    }
    if p.eat("TRUNCATE") {
        let _ = p.eat("TABLE");
        return p.table().map(DdlKind::Truncate);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: &str, name: &str) -> TableRef {
        TableRef::new(db, name)
    }

    #[test]
    fn recognises_table_ddl() {
        assert_eq!(parse("CREATE TABLE `a b` (id int)", "d"), DdlKind::Create(t("d", "a b")));
        assert_eq!(
            parse("create table if not exists x.`y``z` (id int)", "d"),
            DdlKind::Create(t("x", "y`z"))
        );
        assert_eq!(
            parse("ALTER TABLE t ADD COLUMN c INT, RENAME TO u", "d"),
            DdlKind::Alter { table: t("d", "t"), renamed_to: Some(t("d", "u")) }
        );
        assert_eq!(
            parse("ALTER TABLE t RENAME COLUMN a TO b", "d"),
            DdlKind::Alter { table: t("d", "t"), renamed_to: None }
        );
        assert_eq!(
            parse("DROP TABLE IF EXISTS `a`,b.c /* generated by server */", "d"),
            DdlKind::Drop(vec![t("d", "a"), t("b", "c")])
        );
        assert_eq!(
            parse("RENAME TABLE a TO b, x.c TO y.c", "d"),
            DdlKind::Rename(vec![(t("d", "a"), t("d", "b")), (t("x", "c"), t("y", "c"))])
        );
        assert_eq!(parse("TRUNCATE TABLE t", "d"), DdlKind::Truncate(t("d", "t")));
        assert_eq!(parse("truncate t", "d"), DdlKind::Truncate(t("d", "t")));
        assert_eq!(parse("CREATE UNIQUE INDEX i ON t (a)", "d"), DdlKind::Index(t("d", "t")));
        assert_eq!(parse("DROP INDEX i ON s.t", "d"), DdlKind::Index(t("s", "t")));
        assert_eq!(
            parse("/* comment */ ALTER ONLINE TABLE t ADD INDEX (a)", "d"),
            DdlKind::Alter { table: t("d", "t"), renamed_to: None }
        );
    }

    #[test]
    fn other_statements_touch_no_table() {
        for sql in
            ["CREATE DATABASE x", "GRANT ALL ON *.* TO u", "CREATE VIEW v AS SELECT 1", "FLUSH PRIVILEGES"]
        {
            assert_eq!(parse(sql, "d"), DdlKind::Other, "{sql}");
            assert!(parse(sql, "d").tables().is_empty());
        }
    }
}
