//! What a statement in a query event is: transaction control, DDL (with the databases of
//! the objects it names), statement-logged DML, or a server-internal statement.
//!
//! Only the statement's head is read, with a small tokenizer that knows comments (including
//! executable `/*! … */` ones), quoted identifiers and strings. It does not validate SQL;
//! when a DDL statement's objects cannot be told, it reports none, and the caller delivers
//! the statement.

/// A classified statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Statement {
    /// `BEGIN`, `START TRANSACTION`, `XA START`.
    Begin,
    /// `COMMIT`.
    Commit,
    /// `ROLLBACK` of a whole transaction (logged when it changed non-transactional tables).
    Rollback,
    /// A schema change naming objects in these databases (empty: could not tell).
    Ddl(Vec<Target>),
    /// `TRUNCATE [TABLE] t`: a change of the table's data, logged as a statement.
    Truncate(TableRef),
    /// `INSERT`, `UPDATE`, `DELETE`, `REPLACE`, `LOAD DATA` logged as a statement, with the
    /// tables it changes (empty: could not tell).
    Dml(Vec<TableRef>),
    /// Anything else: savepoints, `XA END`, users, grants, flushes, table maintenance,
    /// temporary tables.
    Other,
}

/// The database of an object a DDL statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A qualified name, or a database itself.
    Database(String),
    /// An unqualified name: the session's default database.
    Default,
}

/// A table a statement names: `db.table`, or `table` in the default database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableRef {
    /// The qualifying database, if any.
    pub database: Option<String>,
    /// The table.
    pub table: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Ident(String),
    Str,
    Punct(char),
}

struct Lexer<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Self { s, i: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn bump(&mut self, n: usize) {
        self.i = (self.i + n).min(self.s.len());
    }

    fn skip_trivia(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.bump(rest.len() - trimmed.len());
            let rest = self.rest();
            if let Some(after) = rest
                .strip_prefix("/*!")
                .or_else(|| rest.strip_prefix("/*M!"))
            {
                // Executable comment: its content is SQL; skip the marker and version.
                let digits =
                    after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                self.bump(rest.len() - after.len() + digits);
            } else if let Some(body) = rest.strip_prefix("/*") {
                match body.find("*/") {
                    Some(end) => self.bump(end + 4),
                    None => self.bump(rest.len()),
                }
            } else if rest.starts_with("*/") {
                // End of an executable comment.
                self.bump(2);
            } else if rest.starts_with('#')
                || (rest.starts_with("--")
                    && rest[2..].chars().next().is_none_or(|c| c.is_whitespace()))
            {
                match rest.find('\n') {
                    Some(end) => self.bump(end + 1),
                    None => self.bump(rest.len()),
                }
            } else {
                return;
            }
        }
    }

    fn next(&mut self) -> Option<Tok> {
        self.skip_trivia();
        let rest = self.rest();
        let c = rest.chars().next()?;
        if c == '`' {
            let mut name = String::new();
            let mut chars = rest.char_indices().skip(1).peekable();
            while let Some((i, ch)) = chars.next() {
                if ch == '`' {
                    if chars.peek().map(|&(_, n)| n) == Some('`') {
                        chars.next();
                        name.push('`');
                        continue;
                    }
                    self.bump(i + 1);
                    return Some(Tok::Ident(name));
                }
                name.push(ch);
            }
            self.bump(rest.len());
            return Some(Tok::Ident(name));
        }
        if c == '\'' || c == '"' {
            let bytes = rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                if bytes[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if char::from(bytes[i]) == c {
                    if bytes.get(i + 1).is_some_and(|&b| char::from(b) == c) {
                        i += 2;
                        continue;
                    }
                    self.bump(i + 1);
                    return Some(Tok::Str);
                }
                i += 1;
            }
            self.bump(rest.len());
            return Some(Tok::Str);
        }
        if c.is_alphanumeric() || c == '_' || c == '$' {
            let end = rest
                .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '$'))
                .unwrap_or(rest.len());
            self.bump(end);
            return Some(Tok::Word(rest[..end].to_string()));
        }
        self.bump(c.len_utf8());
        Some(Tok::Punct(c))
    }
}

/// A token stream with one token of lookahead.
struct Tokens<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Option<Tok>>,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            lexer: Lexer::new(s),
            peeked: None,
        }
    }

    fn peek(&mut self) -> Option<&Tok> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next());
        }
        self.peeked.as_ref().and_then(Option::as_ref)
    }

    fn next(&mut self) -> Option<Tok> {
        match self.peeked.take() {
            Some(t) => t,
            None => self.lexer.next(),
        }
    }

    /// The next token as an uppercase keyword, without consuming it.
    fn peek_word(&mut self) -> Option<String> {
        match self.peek() {
            Some(Tok::Word(w)) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }

    /// Consumes the next token if it is the keyword `kw`.
    fn eat(&mut self, kw: &str) -> bool {
        if self.peek_word().as_deref() == Some(kw) {
            self.next();
            true
        } else {
            false
        }
    }

    /// Skips `IF EXISTS` / `IF NOT EXISTS`.
    fn eat_if_exists(&mut self) {
        if self.eat("IF") {
            self.eat("NOT");
            self.eat("EXISTS");
        }
    }

    /// Reads `name` or `db.name`.
    fn name(&mut self) -> Option<Target> {
        let first = match self.next()? {
            Tok::Word(w) | Tok::Ident(w) => w,
            _ => return None,
        };
        if self.peek() == Some(&Tok::Punct('.')) {
            self.next();
            match self.next()? {
                Tok::Word(_) | Tok::Ident(_) => Some(Target::Database(first)),
                _ => None,
            }
        } else {
            Some(Target::Default)
        }
    }

    /// Reads `table` or `db.table`.
    fn table_ref(&mut self) -> Option<TableRef> {
        let first = match self.next()? {
            Tok::Word(w) | Tok::Ident(w) => w,
            _ => return None,
        };
        if self.peek() == Some(&Tok::Punct('.')) {
            self.next();
            match self.next()? {
                Tok::Word(t) | Tok::Ident(t) => Some(TableRef {
                    database: Some(first),
                    table: t,
                }),
                _ => None,
            }
        } else {
            Some(TableRef {
                database: None,
                table: first,
            })
        }
    }

    /// Reads a comma-separated list of tables, each with an optional alias.
    fn table_refs(&mut self) -> Vec<TableRef> {
        let mut out = Vec::new();
        while let Some(t) = self.table_ref() {
            out.push(t);
            if self.eat("AS") {
                self.next();
            }
            if self.peek() != Some(&Tok::Punct(',')) {
                break;
            }
            self.next();
        }
        out
    }

    /// Skips any of the keywords `words`.
    fn skip_words(&mut self, words: &[&str]) {
        while self
            .peek_word()
            .is_some_and(|w| words.contains(&w.as_str()))
        {
            self.next();
        }
    }

    /// Reads a comma-separated list of names.
    fn names(&mut self) -> Vec<Target> {
        let mut out = Vec::new();
        while let Some(t) = self.name() {
            out.push(t);
            if self.peek() != Some(&Tok::Punct(',')) {
                break;
            }
            self.next();
        }
        out
    }
}

/// Object kinds whose statements are server administration, not schema.
const INTERNAL_OBJECTS: &[&str] = &[
    "USER",
    "ROLE",
    "SERVER",
    "TABLESPACE",
    "LOGFILE",
    "RESOURCE",
    "UNDO",
    "INSTANCE",
    "SPATIAL",
    "TEMPORARY",
];

/// Schema objects whose names are qualified by a database.
const NAMED_OBJECTS: &[&str] = &[
    "VIEW",
    "TRIGGER",
    "PROCEDURE",
    "FUNCTION",
    "EVENT",
    "SEQUENCE",
    "PACKAGE",
];

/// Classifies a statement by its head.
pub(crate) fn classify(sql: &str) -> Statement {
    let mut t = Tokens::new(sql);
    let Some(first) = t.peek_word() else {
        return Statement::Other;
    };
    t.next();
    match first.as_str() {
        "BEGIN" => Statement::Begin,
        "START" if t.eat("TRANSACTION") => Statement::Begin,
        "COMMIT" => Statement::Commit,
        "ROLLBACK" => {
            t.eat("WORK");
            if t.eat("TO") {
                Statement::Other // to a savepoint
            } else {
                Statement::Rollback
            }
        }
        "XA" => match t.peek_word().as_deref() {
            Some("START" | "BEGIN") => Statement::Begin,
            _ => Statement::Other,
        },
        "INSERT" | "REPLACE" | "UPDATE" | "DELETE" | "LOAD" => Statement::Dml(dml(&first, &mut t)),
        "TRUNCATE" => {
            t.eat("TABLE");
            match t.table_ref() {
                Some(table) => Statement::Truncate(table),
                None => Statement::Ddl(Vec::new()),
            }
        }
        "RENAME" => {
            if !(t.eat("TABLE") || t.eat("TABLES")) {
                return Statement::Other; // RENAME USER
            }
            let mut targets = Vec::new();
            while let Some(from) = t.name() {
                targets.push(from);
                if !t.eat("TO") {
                    break;
                }
                match t.name() {
                    Some(to) => targets.push(to),
                    None => break,
                }
                if t.peek() != Some(&Tok::Punct(',')) {
                    break;
                }
                t.next();
            }
            Statement::Ddl(targets)
        }
        "CREATE" | "ALTER" | "DROP" => ddl(&mut t),
        _ => Statement::Other,
    }
}

/// The tables a data change statement changes; empty when they cannot be told.
fn dml(verb: &str, t: &mut Tokens<'_>) -> Vec<TableRef> {
    match verb {
        "INSERT" | "REPLACE" => {
            t.skip_words(&["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE"]);
            t.eat("INTO");
            t.table_ref().into_iter().collect()
        }
        "UPDATE" => {
            t.skip_words(&["LOW_PRIORITY", "IGNORE"]);
            let refs = t.table_refs();
            if t.peek_word().as_deref() == Some("SET") {
                refs
            } else {
                Vec::new() // joins: other tables may change too
            }
        }
        "DELETE" => {
            t.skip_words(&["LOW_PRIORITY", "QUICK", "IGNORE"]);
            if t.eat("FROM") {
                let refs = t.table_refs();
                if t.peek_word().as_deref() == Some("USING") {
                    return refs; // DELETE FROM t1, t2 USING …: the listed tables
                }
                refs.into_iter().take(1).collect()
            } else {
                t.table_refs() // DELETE t1, t2 FROM …
            }
        }
        _ => {
            // LOAD DATA … INTO TABLE t
            while let Some(tok) = t.next() {
                if matches!(&tok, Tok::Word(w) if w.eq_ignore_ascii_case("INTO")) {
                    t.eat("TABLE");
                    return t.table_ref().into_iter().collect();
                }
            }
            Vec::new()
        }
    }
}

fn ddl(t: &mut Tokens<'_>) -> Statement {
    // Modifiers between the verb and the object kind.
    let object = loop {
        let Some(w) = t.peek_word() else {
            return Statement::Ddl(Vec::new());
        };
        t.next();
        match w.as_str() {
            "OR" => {
                t.eat("REPLACE");
            }
            "ONLINE" | "OFFLINE" | "IGNORE" | "UNIQUE" | "FULLTEXT" | "AGGREGATE"
            | "NONBLOCKING" => {}
            "SPATIAL" if matches!(t.peek_word().as_deref(), Some("INDEX" | "KEY")) => {}
            "ALGORITHM" | "SQL" | "DEFINER" => {
                // ALGORITHM = x, SQL SECURITY x, DEFINER = user@host: skip to the next
                // keyword that can follow them.
                while let Some(tok) = t.peek() {
                    if let Tok::Word(w) = tok {
                        let w = w.to_ascii_uppercase();
                        if NAMED_OBJECTS.contains(&w.as_str())
                            || matches!(w.as_str(), "ALGORITHM" | "SQL" | "DEFINER")
                        {
                            break;
                        }
                    }
                    t.next();
                }
            }
            other => break other.to_string(),
        }
    };
    if INTERNAL_OBJECTS.contains(&object.as_str()) {
        return Statement::Other;
    }
    match object.as_str() {
        "TABLE" | "TABLES" => {
            t.eat_if_exists();
            Statement::Ddl(t.names())
        }
        "INDEX" | "KEY" => {
            // CREATE INDEX i ON t …, DROP INDEX i ON t: the table comes after ON.
            while let Some(tok) = t.next() {
                if matches!(&tok, Tok::Word(w) if w.eq_ignore_ascii_case("ON")) {
                    return Statement::Ddl(t.name().into_iter().collect());
                }
            }
            Statement::Ddl(Vec::new())
        }
        "DATABASE" | "SCHEMA" => {
            t.eat_if_exists();
            match t.next() {
                Some(Tok::Word(w) | Tok::Ident(w)) => {
                    let upper = w.to_ascii_uppercase();
                    if matches!(
                        upper.as_str(),
                        "DEFAULT" | "CHARACTER" | "CHARSET" | "COLLATE" | "COMMENT"
                    ) {
                        Statement::Ddl(vec![Target::Default]) // ALTER DATABASE without a name
                    } else {
                        Statement::Ddl(vec![Target::Database(w)])
                    }
                }
                _ => Statement::Ddl(vec![Target::Default]),
            }
        }
        o if NAMED_OBJECTS.contains(&o) => {
            t.eat("BODY"); // PACKAGE BODY
            t.eat_if_exists();
            Statement::Ddl(t.names())
        }
        _ => Statement::Ddl(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(s: &str) -> Target {
        Target::Database(s.into())
    }

    #[test]
    fn transaction_control() {
        assert_eq!(classify("BEGIN"), Statement::Begin);
        assert_eq!(classify("  begin work"), Statement::Begin);
        assert_eq!(classify("XA START 'x'"), Statement::Begin);
        assert_eq!(classify("COMMIT"), Statement::Commit);
        assert_eq!(classify("ROLLBACK"), Statement::Rollback);
        assert_eq!(classify("ROLLBACK TO SAVEPOINT s"), Statement::Other);
        assert_eq!(classify("SAVEPOINT s"), Statement::Other);
        assert_eq!(classify("XA END 'x'"), Statement::Other);
        assert_eq!(
            classify("# Dummy event replacing event type 160"),
            Statement::Other
        );
    }

    #[test]
    fn ddl_targets_follow_qualification() {
        assert_eq!(
            classify("CREATE TABLE IF NOT EXISTS `shop`.`t` (id INT)"),
            Statement::Ddl(vec![db("shop")])
        );
        assert_eq!(
            classify("/*!40000 ALTER TABLE */ t ADD COLUMN c INT"),
            Statement::Ddl(vec![Target::Default])
        );
        assert_eq!(
            classify("DROP TABLE IF EXISTS `a`,`other`.`b` /* generated by server */"),
            Statement::Ddl(vec![Target::Default, db("other")])
        );
        assert_eq!(
            classify("RENAME TABLE a TO x.b, c TO d"),
            Statement::Ddl(vec![
                Target::Default,
                db("x"),
                Target::Default,
                Target::Default
            ])
        );
        assert_eq!(
            classify("TRUNCATE TABLE s.t"),
            Statement::Truncate(TableRef {
                database: Some("s".into()),
                table: "t".into()
            })
        );
        assert_eq!(
            classify("truncate t"),
            Statement::Truncate(TableRef {
                database: None,
                table: "t".into()
            })
        );
        assert_eq!(
            classify("CREATE UNIQUE INDEX i ON s.t (a)"),
            Statement::Ddl(vec![db("s")])
        );
        assert_eq!(
            classify("DROP INDEX i ON t"),
            Statement::Ddl(vec![Target::Default])
        );
        assert_eq!(classify("create database x"), Statement::Ddl(vec![db("x")]));
        assert_eq!(
            classify("ALTER DATABASE CHARACTER SET utf8mb4"),
            Statement::Ddl(vec![Target::Default])
        );
        assert_eq!(
            classify(
                "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER \
                 VIEW `v`.`w` AS SELECT 1"
            ),
            Statement::Ddl(vec![db("v")])
        );
        assert_eq!(
            classify("CREATE OR REPLACE TABLE t (a int)"),
            Statement::Ddl(vec![Target::Default])
        );
        assert_eq!(classify("CREATE SOMETHING NEW"), Statement::Ddl(vec![]));
    }

    #[test]
    fn internal_and_dml_statements() {
        for sql in [
            "CREATE USER 'u'@'%'",
            "DROP USER u",
            "GRANT SELECT ON *.* TO u",
            "FLUSH PRIVILEGES",
            "DROP TEMPORARY TABLE IF EXISTS t",
            "CREATE TEMPORARY TABLE t (a int)",
            "RENAME USER a TO b",
            "ANALYZE TABLE t",
            "-- comment only",
        ] {
            assert_eq!(classify(sql), Statement::Other, "{sql}");
        }
        let table = |db: Option<&str>, t: &str| TableRef {
            database: db.map(str::to_string),
            table: t.to_string(),
        };
        assert_eq!(
            classify("insert ignore into t values (1)"),
            Statement::Dml(vec![table(None, "t")])
        );
        assert_eq!(
            classify("/* x */ DELETE FROM `s`.`mem`"),
            Statement::Dml(vec![table(Some("s"), "mem")])
        );
        assert_eq!(
            classify("UPDATE s.t AS x SET a = 1"),
            Statement::Dml(vec![table(Some("s"), "t")])
        );
        assert_eq!(
            classify("UPDATE a JOIN b ON a.id = b.id SET a.x = 1"),
            Statement::Dml(vec![])
        );
        assert_eq!(
            classify("LOAD DATA INFILE 'f' INTO TABLE t"),
            Statement::Dml(vec![table(None, "t")])
        );
    }
}
