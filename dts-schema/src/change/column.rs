//! Column definitions (`name type options…`) as a [`Column`] of the schema model.
//!
//! The type is read here and spelled as `information_schema.COLUMNS.COLUMN_TYPE` prints it
//! (`int(11)`, `decimal(10,2) unsigned`, `enum('a','b''c')`), so the type mapping sees what
//! a schema reader would have given it. The options after the type go through the SQL
//! parser, after the MySQL/MariaDB options it does not know (`CHARSET`, `PERSISTENT`,
//! `COLUMN_FORMAT`, …) are taken out or rewritten.

use dts_core::{Column, ColumnDefault, Generated};
use dts_typemap::mysql::mysql_quote;
use dts_typemap::{MySqlType, TypeError};
use sqlparser::ast::{
    ColumnOption, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    GeneratedExpressionMode, UnaryOperator, Value,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::{Fail, SourceFlavor};
use crate::token::{closing, split_commas, text, Cursor, Tok};

/// A key declared on the column itself (`id int PRIMARY KEY`, `email varchar(80) UNIQUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColumnKey {
    Primary,
    Unique,
}

/// A parsed column definition.
#[derive(Debug, Clone)]
pub(super) struct ColumnSpec {
    pub(super) column: Column,
    pub(super) key: Option<ColumnKey>,
    /// Things the target will not keep, for the outcome's notes.
    pub(super) notes: Vec<String>,
}

/// Character set and collation a column inherits from its table, when known.
#[derive(Debug, Clone, Default)]
pub(super) struct Inherited {
    pub(super) charset: Option<String>,
    pub(super) collation: Option<String>,
}

/// Parses `name type [options]`.
pub(super) fn parse_column(
    sql: &str,
    toks: &[Tok],
    flavor: SourceFlavor,
    inherited: &Inherited,
) -> Result<ColumnSpec, Fail> {
    let mut c = Cursor::new(toks);
    let name = c
        .ident()
        .ok_or_else(|| Fail::Parse("expected a column name".into()))?;
    let ty = parse_type(&mut c, flavor, &name)?;
    let mut spec = ColumnSpec {
        column: Column {
            name: name.clone(),
            ordinal: 0,
            source_type: ty.spelled.clone(),
            // `serial` is `bigint unsigned NOT NULL AUTO_INCREMENT UNIQUE`.
            nullable: !ty.serial,
            default: None,
            auto_increment: ty.serial,
            on_update_current_timestamp: false,
            generated: None,
            charset: ty.charset.clone(),
            collation: ty.collation.clone(),
            json_checked: ty.json_checked,
            comment: None,
        },
        key: ty.serial.then_some(ColumnKey::Unique),
        notes: Vec::new(),
    };
    let kept = strip_options(c.rest(), &mut spec, &name)?;
    parse_options(sql, &kept, &mut spec, &name)?;
    let column = &mut spec.column;

    if ty.text_like {
        if column.charset.is_none() {
            column.charset.clone_from(&inherited.charset);
        }
        if column.collation.is_none() {
            column.collation = match (&column.charset, ty.binary_collation) {
                (Some(cs), true) => Some(format!("{cs}_bin")),
                (Some(cs), false) if inherited.charset.as_ref() == Some(cs) => {
                    inherited.collation.clone()
                }
                _ => None,
            };
        }
    } else {
        column.charset = None;
        column.collation = None;
    }
    if column.auto_increment || spec.key == Some(ColumnKey::Primary) {
        // MySQL makes auto-increment and primary key columns NOT NULL.
        column.nullable = false;
    }
    if matches!(column.default, Some(ColumnDefault::Literal(_)))
        && column.source_type.starts_with("timestamp")
    {
        spec.notes.push(format!(
            "the default of timestamp column `{name}` is taken as UTC; the session that ran the statement may have used another time zone"
        ));
    }
    Ok(spec)
}

/// A column type as read from the definition.
struct TypeSpec {
    spelled: String,
    charset: Option<String>,
    collation: Option<String>,
    binary_collation: bool,
    json_checked: bool,
    serial: bool,
    /// Whether the type holds text (and so has a character set).
    text_like: bool,
}

/// One argument inside a type's parentheses.
enum Arg {
    Number(u64),
    Text(String),
}

fn parse_type(c: &mut Cursor<'_>, flavor: SourceFlavor, column: &str) -> Result<TypeSpec, Fail> {
    let missing = || Fail::Parse(format!("expected a type for column `{column}`"));
    let mut name = c.next().and_then(Tok::keyword).ok_or_else(missing)?;
    let mut charset = None;
    if name == "national" {
        name = c.next().and_then(Tok::keyword).ok_or_else(missing)?;
        charset = Some("utf8mb3".to_string());
    }
    let name = match name.as_str() {
        "nchar" | "nvarchar" => {
            charset = Some("utf8mb3".to_string());
            if name == "nchar" && !c.eat_kw("varying") {
                "char".to_string()
            } else {
                "varchar".to_string()
            }
        }
        "char" | "character" => {
            if c.eat_kw("varying") {
                "varchar".to_string()
            } else {
                "char".to_string()
            }
        }
        "double" => {
            c.eat_kw("precision");
            name
        }
        "long" => {
            if c.eat_kw("varbinary") {
                "mediumblob".to_string()
            } else {
                c.eat_kw("varchar");
                "mediumtext".to_string()
            }
        }
        _ => name,
    };
    let mut args = Vec::new();
    if let Some(inner) = c.group() {
        for part in split_commas(inner) {
            match part {
                [t] => match (t.number(), t.string()) {
                    (Some(n), _) => args.push(Arg::Number(n)),
                    (None, Some(s)) => args.push(Arg::Text(s)),
                    _ => {
                        return Err(Fail::Parse(format!(
                            "unexpected `{}` in the type of column `{column}`",
                            t.token
                        )))
                    }
                },
                _ => {
                    return Err(Fail::Parse(format!(
                        "malformed type arguments for column `{column}`"
                    )))
                }
            }
        }
    }
    let (mut unsigned, mut zerofill, mut binary_collation, mut byte) = (false, false, false, false);
    while let Some(word) = c.peek().and_then(Tok::keyword) {
        match word.as_str() {
            "unsigned" => unsigned = true,
            "signed" => {}
            "zerofill" => zerofill = true,
            "binary" => binary_collation = true,
            "byte" => byte = true,
            "ascii" => charset = Some("latin1".into()),
            "unicode" => charset = Some("ucs2".into()),
            _ => break,
        }
        c.next();
    }
    unsigned |= zerofill;
    let serial = name == "serial";
    if serial {
        unsigned = true;
    }
    let numbers: Vec<u64> = args
        .iter()
        .filter_map(|a| match a {
            Arg::Number(n) => Some(*n),
            Arg::Text(_) => None,
        })
        .collect();
    let sign = |s: &mut String| {
        if unsigned {
            s.push_str(" unsigned");
        }
        if zerofill {
            s.push_str(" zerofill");
        }
    };
    let mut json_checked = false;
    let mut text_like = false;
    let integer = |base: &str, width: Option<u64>| {
        let width = match flavor {
            SourceFlavor::MariaDb => width.or_else(|| mariadb_width(base, unsigned)),
            SourceFlavor::MySql => width.filter(|w| zerofill || (base == "tinyint" && *w == 1)),
        };
        let mut s = match width {
            Some(w) => format!("{base}({w})"),
            None => base.to_string(),
        };
        sign(&mut s);
        s
    };
    let first = numbers.first().copied();
    let spelled = match name.as_str() {
        "bool" | "boolean" => integer("tinyint", Some(1)),
        "tinyint" | "int1" => integer("tinyint", first),
        "smallint" | "int2" => integer("smallint", first),
        "mediumint" | "int3" | "middleint" => integer("mediumint", first),
        "int" | "integer" | "int4" => integer("int", first),
        "bigint" | "int8" => integer("bigint", first),
        "serial" => integer("bigint", None),
        "decimal" | "dec" | "numeric" | "fixed" => {
            let mut s = format!(
                "decimal({},{})",
                first.unwrap_or(10),
                numbers.get(1).copied().unwrap_or(0)
            );
            sign(&mut s);
            s
        }
        "float" | "float4" | "double" | "real" | "float8" => {
            let double = matches!(name.as_str(), "double" | "real" | "float8")
                || matches!(numbers.as_slice(), [p] if *p > 24);
            let base = if double { "double" } else { "float" };
            let mut s = match numbers.as_slice() {
                [m, d] => format!("{base}({m},{d})"),
                _ => base.to_string(),
            };
            sign(&mut s);
            s
        }
        "bit" => format!("bit({})", first.unwrap_or(1)),
        "char" if byte => format!("binary({})", first.unwrap_or(1)),
        "char" => {
            text_like = true;
            format!("char({})", first.unwrap_or(1))
        }
        "varchar" => {
            text_like = true;
            format!("varchar({})", first.unwrap_or(0))
        }
        "binary" => format!("binary({})", first.unwrap_or(1)),
        "varbinary" => format!("varbinary({})", first.unwrap_or(0)),
        "text" | "blob" if first.is_some() => {
            text_like = name == "text";
            // `text(n)` is the smallest text type that holds n bytes.
            MySqlType::parse(&format!("{name}({})", first.unwrap_or(0)))
                .map(|t| t.to_string())
                .unwrap_or_else(|_| name.clone())
        }
        "tinytext" | "text" | "mediumtext" | "longtext" => {
            text_like = true;
            name.clone()
        }
        "date" | "tinyblob" | "blob" | "mediumblob" | "longblob" => name.clone(),
        "time" | "datetime" | "timestamp" => match first {
            Some(p) if p > 0 => format!("{name}({p})"),
            _ => name.clone(),
        },
        "year" => match flavor {
            SourceFlavor::MariaDb => format!("year({})", first.unwrap_or(4)),
            SourceFlavor::MySql => "year".to_string(),
        },
        "enum" | "set" => {
            text_like = true;
            let members: Vec<String> = args
                .iter()
                .map(|a| match a {
                    Arg::Text(s) => mysql_quote(s),
                    Arg::Number(n) => mysql_quote(&n.to_string()),
                })
                .collect();
            format!("{name}({})", members.join(","))
        }
        "json" => match flavor {
            SourceFlavor::MariaDb => {
                // MariaDB's JSON is LONGTEXT with a json_valid() check.
                json_checked = true;
                text_like = true;
                charset = Some("utf8mb4".into());
                binary_collation = true;
                "longtext".to_string()
            }
            SourceFlavor::MySql => "json".to_string(),
        },
        // Spatial and unknown types (uuid, inet6, …) keep their spelling; the type mapping
        // reports them.
        other => {
            let mut s = other.to_string();
            if !numbers.is_empty() {
                let list: Vec<String> = numbers.iter().map(u64::to_string).collect();
                s = format!("{s}({})", list.join(","));
            }
            s
        }
    };
    if let Err(TypeError::Invalid { reason, .. }) = MySqlType::parse(&spelled) {
        return Err(Fail::Unsupported(format!(
            "invalid type `{spelled}` of column `{column}`: {reason}"
        )));
    }
    let collation = if binary_collation && text_like {
        Some(format!(
            "{}_bin",
            charset.clone().unwrap_or_else(|| "utf8mb4".into())
        ))
    } else {
        None
    };
    Ok(TypeSpec {
        spelled,
        charset: if text_like { charset } else { None },
        collation,
        binary_collation,
        json_checked,
        serial,
        text_like,
    })
}

/// MariaDB's default display width of an integer type.
fn mariadb_width(base: &str, unsigned: bool) -> Option<u64> {
    Some(match (base, unsigned) {
        ("tinyint", false) => 4,
        ("tinyint", true) => 3,
        ("smallint", false) => 6,
        ("smallint", true) => 5,
        ("mediumint", false) => 9,
        ("mediumint", true) => 8,
        ("int", false) => 11,
        ("int", true) => 10,
        ("bigint", _) => 20,
        _ => return None,
    })
}

/// Takes out the options the SQL parser does not know and records them; returns the rest.
fn strip_options(toks: &[Tok], spec: &mut ColumnSpec, name: &str) -> Result<Vec<Tok>, Fail> {
    let mut kept = Vec::with_capacity(toks.len());
    let mut c = Cursor::new(toks);
    let value = |c: &mut Cursor<'_>, what: &str| {
        c.eat_eq();
        c.next()
            .and_then(Tok::name_or_string)
            .ok_or_else(|| Fail::Parse(format!("expected a value after {what} of column `{name}`")))
    };
    while let Some(t) = c.peek() {
        if t.token == Token::LParen {
            let start = c.pos();
            c.group();
            kept.extend_from_slice(&toks[start..c.pos()]);
            if c.pos() == start {
                kept.push(t.clone());
                c.next();
            }
            continue;
        }
        if c.eat_kws(&["CHARACTER", "SET"]) || c.eat_kw("CHARSET") {
            spec.column.charset = Some(value(&mut c, "CHARACTER SET")?);
        } else if c.eat_kw("COLLATE") {
            spec.column.collation = Some(value(&mut c, "COLLATE")?);
        } else if c.eat_kw("AUTO_INCREMENT") {
            spec.column.auto_increment = true;
        } else if c.eat_kws(&["PRIMARY", "KEY"]) || c.eat_kw("KEY") {
            spec.key = Some(ColumnKey::Primary);
        } else if c.eat_kw("UNIQUE") {
            c.eat_kw("KEY");
            if spec.key.is_none() {
                spec.key = Some(ColumnKey::Unique);
            }
        } else if c.eat_kw("COMMENT") {
            let text = c.next().and_then(Tok::string).ok_or_else(|| {
                Fail::Parse(format!(
                    "expected a string after COMMENT of column `{name}`"
                ))
            })?;
            spec.column.comment = (!text.is_empty()).then_some(text);
        } else if c.eat_kws(&["SERIAL", "DEFAULT", "VALUE"]) {
            spec.column.auto_increment = true;
            spec.column.nullable = false;
            if spec.key.is_none() {
                spec.key = Some(ColumnKey::Unique);
            }
        } else if c.eat_kw("COLUMN_FORMAT") || c.eat_kw("STORAGE") || c.eat_kw("SRID") {
            c.next();
        } else if c.eat_kw("INVISIBLE") || c.eat_kw("VISIBLE") {
        } else if c.eat_kw("ENGINE_ATTRIBUTE") || c.eat_kw("SECONDARY_ENGINE_ATTRIBUTE") {
            c.eat_eq();
            c.next();
        } else if c.eat_kw("COMPRESSED") {
            if c.eat(&Token::Eq) {
                c.next();
            }
        } else if c.eat_kws(&["WITHOUT", "SYSTEM", "VERSIONING"]) {
        } else if c.at_kws(&["WITH", "SYSTEM", "VERSIONING"]) {
            return Err(Fail::Unsupported(format!(
                "system versioning of column `{name}`"
            )));
        } else if c.eat_kw("PERSISTENT") {
            kept.push(t.replaced_by("STORED"));
        } else {
            kept.push(t.clone());
            c.next();
        }
    }
    Ok(kept)
}

/// Reads the remaining options with the SQL parser.
fn parse_options(sql: &str, toks: &[Tok], spec: &mut ColumnSpec, name: &str) -> Result<(), Fail> {
    let dialect = MySqlDialect {};
    let mut p =
        Parser::new(&dialect).with_tokens_with_locations(toks.iter().map(Tok::with_span).collect());
    let parse_err = |e: sqlparser::parser::ParserError| {
        Fail::Parse(format!("in the definition of column `{name}`: {e}"))
    };
    while p.peek_token().token != Token::EOF {
        let start = p.index();
        if p.parse_keyword(Keyword::CONSTRAINT) && !p.peek_keyword(Keyword::CHECK) {
            p.parse_identifier().map_err(parse_err)?;
        }
        let Some(option) = p.parse_optional_column_option().map_err(parse_err)? else {
            return Err(Fail::Parse(format!(
                "unexpected `{}` in the definition of column `{name}`",
                p.peek_token().token
            )));
        };
        let range = &toks[start.min(toks.len())..p.index().min(toks.len())];
        apply_option(sql, option, range, spec, name)?;
    }
    Ok(())
}

fn apply_option(
    sql: &str,
    option: ColumnOption,
    range: &[Tok],
    spec: &mut ColumnSpec,
    name: &str,
) -> Result<(), Fail> {
    let column = &mut spec.column;
    match option {
        ColumnOption::Null => column.nullable = true,
        ColumnOption::NotNull => column.nullable = false,
        ColumnOption::Default(expr) => {
            let at = range
                .iter()
                .position(|t| t.is_kw("DEFAULT"))
                .map_or(0, |i| i + 1);
            column.default = default_from(&expr, text(sql, &range[at..]));
        }
        ColumnOption::OnUpdate(expr) => {
            if now_precision(&expr).is_none() {
                return Err(Fail::Unsupported(format!(
                    "`ON UPDATE {expr}` of column `{name}` (only the current time is supported)"
                )));
            }
            column.on_update_current_timestamp = true;
        }
        ColumnOption::Generated {
            generation_expr: Some(_),
            generation_expr_mode,
            ..
        } => {
            let open = range
                .iter()
                .position(|t| t.token == Token::LParen)
                .ok_or_else(|| Fail::Parse(format!("malformed generated column `{name}`")))?;
            let close = closing(range, open)
                .ok_or_else(|| Fail::Parse(format!("malformed generated column `{name}`")))?;
            column.generated = Some(Generated {
                expression: text(sql, &range[open + 1..close]).to_string(),
                stored: generation_expr_mode == Some(GeneratedExpressionMode::Stored),
            });
        }
        ColumnOption::Check(check) => {
            if is_json_valid(&check.expr, name) {
                column.json_checked = true;
            } else {
                spec.notes.push(format!(
                    "the check constraint of column `{name}` is not migrated"
                ));
            }
        }
        ColumnOption::ForeignKey(_) => spec.notes.push(format!(
            "the REFERENCES clause of column `{name}` is ignored, as the source ignores it"
        )),
        ColumnOption::Comment(text) => column.comment = (!text.is_empty()).then_some(text),
        ColumnOption::CharacterSet(cs) => column.charset = Some(cs.to_string()),
        ColumnOption::Collation(coll) => column.collation = Some(coll.to_string()),
        ColumnOption::PrimaryKey(_) => spec.key = Some(ColumnKey::Primary),
        ColumnOption::Unique(_) => {
            if spec.key.is_none() {
                spec.key = Some(ColumnKey::Unique);
            }
        }
        ColumnOption::DialectSpecific(tokens)
            if tokens.iter().any(
                |t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("AUTO_INCREMENT")),
            ) =>
        {
            column.auto_increment = true;
        }
        ColumnOption::Invisible => {}
        other => {
            return Err(Fail::Unsupported(format!(
                "column option `{other}` of column `{name}`"
            )))
        }
    }
    Ok(())
}

/// Whether `expr` is `json_valid(column)`.
fn is_json_valid(expr: &Expr, column: &str) -> bool {
    let Expr::Function(f) = expr else {
        return false;
    };
    function_name(f).eq_ignore_ascii_case("json_valid")
        && matches!(single_arg(f), Some(Expr::Identifier(id)) if id.value.eq_ignore_ascii_case(column))
}

fn function_name(f: &Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .unwrap_or_default()
}

fn args(f: &Function) -> Option<Vec<&Expr>> {
    match &f.args {
        FunctionArguments::None => Some(Vec::new()),
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        FunctionArguments::Subquery(_) => None,
    }
}

fn single_arg(f: &Function) -> Option<&Expr> {
    match args(f)?.as_slice() {
        [e] => Some(*e),
        _ => None,
    }
}

/// The fractional precision of a current-time expression (`CURRENT_TIMESTAMP`, `now(3)`,
/// `LOCALTIMESTAMP`), or `None` for other expressions.
pub(super) fn now_precision(expr: &Expr) -> Option<u8> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let name = function_name(f).to_ascii_lowercase();
    if !matches!(
        name.as_str(),
        "current_timestamp" | "now" | "localtime" | "localtimestamp"
    ) {
        return None;
    }
    match args(f)?.as_slice() {
        [] => Some(0),
        [Expr::Value(v)] => match &v.value {
            Value::Number(n, _) => n.parse::<u8>().ok().filter(|p| *p <= 6),
            _ => None,
        },
        _ => None,
    }
}

/// A `DEFAULT` as the schema model holds it: literals unescaped, `NULL` as no default, the
/// current time with its precision, anything else as the source text.
pub(super) fn default_from(expr: &Expr, raw: &str) -> Option<ColumnDefault> {
    let expression = || Some(ColumnDefault::Expression(raw.trim().to_string()));
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Null => None,
            Value::SingleQuotedString(s)
            | Value::DoubleQuotedString(s)
            | Value::NationalStringLiteral(s) => Some(ColumnDefault::Literal(s.clone())),
            Value::Number(n, _) => Some(ColumnDefault::Literal(n.clone())),
            Value::Boolean(b) => Some(ColumnDefault::Literal(if *b { "1" } else { "0" }.into())),
            Value::SingleQuotedByteStringLiteral(bits) => {
                Some(ColumnDefault::Literal(format!("b'{bits}'")))
            }
            Value::HexStringLiteral(hex) => {
                match decode_hex(hex).and_then(|b| String::from_utf8(b).ok()) {
                    Some(s) => Some(ColumnDefault::Literal(s)),
                    None => expression(),
                }
            }
            _ => expression(),
        },
        Expr::UnaryOp { op, expr: inner } => match (op, inner.as_ref()) {
            (UnaryOperator::Minus, Expr::Value(v)) => match &v.value {
                Value::Number(n, _) => Some(ColumnDefault::Literal(format!("-{n}"))),
                _ => expression(),
            },
            (UnaryOperator::Plus, Expr::Value(v)) => match &v.value {
                Value::Number(n, _) => Some(ColumnDefault::Literal(n.clone())),
                _ => expression(),
            },
            _ => expression(),
        },
        // A charset introducer: `_utf8mb4'x'`.
        Expr::Prefixed { value, .. } => default_from(value, raw),
        // MySQL 8's `DEFAULT (expr)`.
        Expr::Nested(inner) => {
            let raw = raw.trim();
            let inner_raw = raw
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or(raw);
            default_from(inner, inner_raw)
        }
        e => match now_precision(e) {
            Some(p) => Some(ColumnDefault::CurrentTimestamp(p)),
            None => expression(),
        },
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::tokenize;

    fn parse(def: &str, flavor: SourceFlavor) -> ColumnSpec {
        let toks = tokenize(def).unwrap();
        parse_column(def, &toks, flavor, &Inherited::default())
            .unwrap_or_else(|e| panic!("{def}: {e:?}"))
    }

    fn spelled(def: &str, flavor: SourceFlavor) -> String {
        parse(def, flavor).column.source_type
    }

    #[test]
    fn types_are_spelled_as_information_schema_prints_them() {
        use SourceFlavor::{MariaDb, MySql};
        for (def, maria, mysql) in [
            ("c int", "int(11)", "int"),
            ("c INT(5) UNSIGNED", "int(5) unsigned", "int unsigned"),
            (
                "c integer unsigned zerofill",
                "int(10) unsigned zerofill",
                "int unsigned zerofill",
            ),
            ("c tinyint(1)", "tinyint(1)", "tinyint(1)"),
            ("c bool", "tinyint(1)", "tinyint(1)"),
            (
                "c bigint unsigned",
                "bigint(20) unsigned",
                "bigint unsigned",
            ),
            ("c dec", "decimal(10,0)", "decimal(10,0)"),
            ("c numeric(5)", "decimal(5,0)", "decimal(5,0)"),
            (
                "c decimal(10,2) unsigned",
                "decimal(10,2) unsigned",
                "decimal(10,2) unsigned",
            ),
            ("c float(30)", "double", "double"),
            ("c float(7,4)", "float(7,4)", "float(7,4)"),
            ("c double precision", "double", "double"),
            ("c real", "double", "double"),
            ("c char", "char(1)", "char(1)"),
            ("c national varchar(5)", "varchar(5)", "varchar(5)"),
            ("c character varying(9)", "varchar(9)", "varchar(9)"),
            ("c long varchar", "mediumtext", "mediumtext"),
            ("c long varbinary", "mediumblob", "mediumblob"),
            ("c text(100)", "tinytext", "tinytext"),
            ("c datetime(6)", "datetime(6)", "datetime(6)"),
            ("c timestamp(0)", "timestamp", "timestamp"),
            ("c year", "year(4)", "year"),
            (
                "c enum(\"a\",'b''c', 'd\\\\e')",
                "enum('a','b''c','d\\\\e')",
                "enum('a','b''c','d\\\\e')",
            ),
            ("c set('x','y')", "set('x','y')", "set('x','y')"),
            ("c json", "longtext", "json"),
            ("c binary", "binary(1)", "binary(1)"),
            ("c varbinary(16)", "varbinary(16)", "varbinary(16)"),
            ("c geometry", "geometry", "geometry"),
            ("c inet6", "inet6", "inet6"),
            ("c serial", "bigint(20) unsigned", "bigint unsigned"),
        ] {
            assert_eq!(spelled(def, MariaDb), maria, "{def}");
            assert_eq!(spelled(def, MySql), mysql, "{def}");
        }
    }

    #[test]
    fn options_become_the_model() {
        let s = parse(
            "`name` varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT 'x''y' COMMENT 'the name'",
            SourceFlavor::MariaDb,
        );
        let c = &s.column;
        assert_eq!(c.name, "name");
        assert!(!c.nullable);
        assert_eq!(c.default, Some(ColumnDefault::Literal("x'y".into())));
        assert_eq!(c.comment.as_deref(), Some("the name"));
        assert_eq!(c.charset.as_deref(), Some("utf8mb4"));
        assert_eq!(c.collation.as_deref(), Some("utf8mb4_bin"));

        let s = parse(
            "ts timestamp(3) NOT NULL DEFAULT current_timestamp(3) ON UPDATE current_timestamp(3)",
            SourceFlavor::MariaDb,
        );
        assert_eq!(s.column.default, Some(ColumnDefault::CurrentTimestamp(3)));
        assert!(s.column.on_update_current_timestamp);

        let s = parse(
            "id int NOT NULL AUTO_INCREMENT PRIMARY KEY",
            SourceFlavor::MariaDb,
        );
        assert!(s.column.auto_increment);
        assert_eq!(s.key, Some(ColumnKey::Primary));

        let s = parse("v int AS (`a` + (b * 2)) PERSISTENT", SourceFlavor::MariaDb);
        assert_eq!(
            s.column.generated,
            Some(Generated {
                expression: "`a` + (b * 2)".into(),
                stored: true
            })
        );
        let s = parse(
            "v int GENERATED ALWAYS AS (a+1) VIRTUAL",
            SourceFlavor::MySql,
        );
        assert!(!s.column.generated.unwrap().stored);

        let s = parse(
            "j longtext CHARSET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`j`))",
            SourceFlavor::MariaDb,
        );
        assert!(s.column.json_checked);
        assert_eq!(s.column.default, None);

        for (def, default) in [
            ("c int DEFAULT -1", ColumnDefault::Literal("-1".into())),
            ("c int DEFAULT '5'", ColumnDefault::Literal("5".into())),
            (
                "c bit(3) DEFAULT b'101'",
                ColumnDefault::Literal("b'101'".into()),
            ),
            (
                "c varchar(3) DEFAULT _utf8mb4'a'",
                ColumnDefault::Literal("a".into()),
            ),
            (
                "c int DEFAULT (1 + 2)",
                ColumnDefault::Expression("1 + 2".into()),
            ),
            (
                "c varchar(36) DEFAULT uuid()",
                ColumnDefault::Expression("uuid()".into()),
            ),
            (
                "c datetime DEFAULT NOW()",
                ColumnDefault::CurrentTimestamp(0),
            ),
            ("c tinyint DEFAULT TRUE", ColumnDefault::Literal("1".into())),
            (
                "c varchar(3) DEFAULT 'it\\'s'",
                ColumnDefault::Literal("it's".into()),
            ),
        ] {
            assert_eq!(
                parse(def, SourceFlavor::MariaDb).column.default,
                Some(default),
                "{def}"
            );
        }
    }

    #[test]
    fn unknown_options_are_errors() {
        let toks = tokenize("c int FROBNICATE").unwrap();
        let e = parse_column(
            "c int FROBNICATE",
            &toks,
            SourceFlavor::MariaDb,
            &Inherited::default(),
        )
        .unwrap_err();
        assert!(matches!(e, Fail::Parse(m) if m.contains("column `c`")));
    }
}
