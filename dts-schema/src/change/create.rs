//! `CREATE TABLE` bodies and table options as a [`Table`] of the schema model.

use std::collections::BTreeSet;

use dts_core::{Table, TableName};
use sqlparser::tokenizer::Token;

use super::column::{parse_column, ColumnKey, Inherited};
use super::key::{parse_key, starts_key, KeySpec};
use super::model::{add_key, free_index_name, index_pos, renumber};
use super::{Fail, SourceFlavor};
use crate::token::{split_commas, text, Cursor, Tok};

/// What follows `CREATE TABLE name`.
#[derive(Debug)]
pub(super) enum Body {
    /// Columns and keys, and the indexes the source generated for foreign keys.
    Defined {
        table: Box<Table>,
        notes: Vec<String>,
        generated: BTreeSet<String>,
    },
    /// `LIKE other`.
    Like((Option<String>, String)),
}

/// Table options the source keeps in the schema model.
#[derive(Debug, Default)]
pub(super) struct TableOptions {
    pub(super) comment: Option<String>,
    pub(super) auto_increment: Option<u64>,
    pub(super) charset: Option<String>,
    pub(super) collation: Option<String>,
    /// The options changed the data or cannot be kept (`CONVERT TO CHARACTER SET binary`).
    pub(super) unsupported: Option<String>,
}

/// Reads table options (`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='x'`, with or without
/// `=` and commas) until the end or a token that is not an option; returns the options and
/// the position where reading stopped.
pub(super) fn table_options(toks: &[Tok]) -> (TableOptions, usize) {
    let mut opts = TableOptions::default();
    let mut c = Cursor::new(toks);
    loop {
        c.eat(&Token::Comma);
        let start = c.pos();
        c.eat_kw("DEFAULT");
        if c.eat_kws(&["CHARACTER", "SET"]) || c.eat_kw("CHARSET") {
            c.eat_eq();
            opts.charset = c.next().and_then(Tok::name_or_string);
        } else if c.eat_kw("COLLATE") {
            c.eat_eq();
            opts.collation = c.next().and_then(Tok::name_or_string);
        } else if c.pos() > start {
            // `DEFAULT` not followed by a character set or collation.
            c.set_pos(start);
            break;
        } else if c.eat_kw("COMMENT") {
            c.eat_eq();
            opts.comment = c.next().and_then(Tok::string);
        } else if c.eat_kw("AUTO_INCREMENT") {
            c.eat_eq();
            opts.auto_increment = c.next().and_then(Tok::number);
        } else if c.eat_kws(&["DATA", "DIRECTORY"]) || c.eat_kws(&["INDEX", "DIRECTORY"]) {
            c.eat_eq();
            c.next();
        } else if c.eat_kws(&["START", "TRANSACTION"]) {
            // MySQL logs `CREATE TABLE … SELECT` as `CREATE TABLE … START TRANSACTION`.
        } else if c.at_kws(&["WITH", "SYSTEM", "VERSIONING"]) {
            opts.unsupported = Some("system versioning".into());
            c.set_pos(c.pos() + 3);
        } else if let Some(word) = c.peek().and_then(Tok::keyword) {
            if !TABLE_OPTIONS.contains(&word.as_str()) {
                break;
            }
            c.next();
            c.eat_eq();
            c.skip_value();
        } else {
            break;
        }
    }
    (opts, c.pos())
}

/// Table options that do not concern the target.
const TABLE_OPTIONS: &[&str] = &[
    "engine",
    "type",
    "row_format",
    "key_block_size",
    "avg_row_length",
    "checksum",
    "table_checksum",
    "delay_key_write",
    "max_rows",
    "min_rows",
    "pack_keys",
    "stats_auto_recalc",
    "stats_persistent",
    "stats_sample_pages",
    "insert_method",
    "tablespace",
    "storage",
    "compression",
    "encryption",
    "encrypted",
    "encryption_key_id",
    "page_checksum",
    "page_compressed",
    "page_compression_level",
    "transactional",
    "ietf_quotes",
    "sequence",
    "autoextend_size",
    "engine_attribute",
    "secondary_engine",
    "secondary_engine_attribute",
    "union",
    "connection",
    "password",
];

/// Parses what follows `CREATE TABLE name`.
pub(super) fn parse_body(
    sql: &str,
    toks: &[Tok],
    name: &TableName,
    flavor: SourceFlavor,
) -> Result<Body, Fail> {
    let mut c = Cursor::new(toks);
    let ctas = || {
        Fail::Unsupported(
            "`CREATE TABLE … SELECT` (the rows it copies are not logged as row events)".into(),
        )
    };
    if c.eat_kw("LIKE") {
        return c
            .object_name()
            .map(Body::Like)
            .ok_or_else(|| Fail::Parse("expected a table name after LIKE".into()));
    }
    let Some(inner) = c.group() else {
        return Err(ctas());
    };
    {
        let mut ic = Cursor::new(inner);
        if ic.eat_kw("LIKE") {
            return ic
                .object_name()
                .map(Body::Like)
                .ok_or_else(|| Fail::Parse("expected a table name after LIKE".into()));
        }
    }
    let (options, stop) = table_options(c.rest());
    c.set_pos(c.pos() + stop);
    if let Some(what) = options.unsupported {
        return Err(Fail::Unsupported(what));
    }
    if let Some(t) = c.peek() {
        if t.is_kw("PARTITION") {
            // Partitioning does not change what the table holds.
        } else if [
            "IGNORE", "REPLACE", "AS", "SELECT", "WITH", "TABLE", "VALUES",
        ]
        .iter()
        .any(|kw| t.is_kw(kw))
            || t.token == Token::LParen
        {
            return Err(ctas());
        } else {
            return Err(Fail::Parse(format!(
                "unexpected `{}` after the table definition",
                t.token
            )));
        }
    }

    let inherited = Inherited {
        charset: options.charset.clone(),
        collation: options.collation.clone(),
    };
    let mut table = Table {
        name: name.clone(),
        columns: Vec::new(),
        primary_key: None,
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        comment: options.comment.filter(|c| !c.is_empty()),
        estimated_rows: 0,
        auto_increment: options.auto_increment,
    };
    let mut notes = Vec::new();
    let mut keys = Vec::new();
    for part in split_commas(inner) {
        if part.is_empty() {
            return Err(Fail::Parse("empty definition in the table body".into()));
        }
        if starts_key(part) {
            keys.push(parse_key(part, name)?.spec);
        } else if part[0].is_kw("PERIOD") && part.get(1).is_some_and(|t| t.is_kw("FOR")) {
            return Err(Fail::Unsupported(format!("`{}`", text(sql, part))));
        } else {
            let spec = parse_column(sql, part, flavor, &inherited)?;
            notes.extend(spec.notes);
            let column_name = spec.column.name.clone();
            if table
                .columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&column_name))
            {
                return Err(Fail::Unsupported(format!(
                    "duplicate column `{column_name}`"
                )));
            }
            table.columns.push(spec.column);
            match spec.key {
                Some(ColumnKey::Primary) => keys.push(KeySpec::Primary(vec![column_name])),
                Some(ColumnKey::Unique) => keys.push(KeySpec::Index {
                    name: None,
                    index: dts_core::Index {
                        name: String::new(),
                        unique: true,
                        kind: dts_core::IndexKind::BTree,
                        columns: vec![dts_core::IndexColumn {
                            name: column_name,
                            prefix_length: None,
                            descending: false,
                        }],
                    },
                }),
                None => {}
            }
        }
    }
    if table.columns.is_empty() {
        return Err(Fail::Parse("a table without columns".into()));
    }
    renumber(&mut table);
    // Keys in the order they are declared; a foreign key generates an index unless a key
    // covers its columns, and a later key covering a generated index replaces it. Unnamed
    // keys are named after that, in order, as the source does.
    let mut generated = BTreeSet::new();
    let mut unnamed = Vec::new();
    for (n, key) in keys.into_iter().enumerate() {
        let key = match key {
            KeySpec::Index { name: None, index } => {
                let placeholder = format!("\u{1}{n}");
                let base = index
                    .columns
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                unnamed.push((placeholder.clone(), base));
                KeySpec::Index {
                    name: Some(placeholder),
                    index,
                }
            }
            key => key,
        };
        add_key(&mut table, &mut generated, key, flavor, false, &mut notes)?;
    }
    for (placeholder, base) in unnamed {
        if let Some(i) = index_pos(&table, &placeholder) {
            let name = free_index_name(&table, &base);
            table.indexes[i].name = name;
        }
    }
    Ok(Body::Defined {
        table: Box::new(table),
        notes,
        generated,
    })
}
