//! What a PostgreSQL relation description ([`dts_core::Change::Relation`]) says changed in
//! a table, against the tracked schema: the only schema changes logical decoding shows.
//!
//! A relation message lists a table's replicated columns (names, types, key flags) and
//! nothing else: no defaults, no constraints, no `USING` expression of a type change, and
//! no rename. The comparison finds columns added (PostgreSQL appends them), dropped and
//! retyped; a column whose name changed while its attribute number stayed is a rename,
//! which this module refuses to guess at (written as a drop and an add, it would empty the
//! column in the target), as it refuses a column it cannot place.

use dts_core::{Column, Error, ErrorKind, RelationColumn, Result, Table};

/// How a table's replicated columns changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelationDiff {
    /// Columns that are new, in order, with their types.
    pub added: Vec<RelationColumn>,
    /// Columns that are gone, by name.
    pub dropped: Vec<String>,
    /// Columns whose type changed: name, old type, new type.
    pub retyped: Vec<(String, String, String)>,
}

impl RelationDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.dropped.is_empty() && self.retyped.is_empty()
    }
}

/// Compares `described` with the replicated (non-generated) columns of `table` as
/// tracked.
///
/// # Errors
///
/// [`ErrorKind::Unsupported`] naming the table and both column lists for a change the
/// description cannot show as it was: a renamed column (a new name on an attribute number
/// that a tracked column had), a new column whose attribute number is unknown (dropped
/// again since) or which does not come after every column kept, and a new column with a
/// default but no recorded value for the rows already there
/// ([`RelationColumn::missing`]).
pub fn relation_diff(table: &Table, described: &[RelationColumn]) -> Result<RelationDiff> {
    let tracked: Vec<&Column> = table
        .columns
        .iter()
        .filter(|c| c.generated.is_none())
        .collect();
    // A column of the same name on another attribute number was dropped and added again.
    let same_place =
        |c: &Column, d: &RelationColumn| c.ordinal == 0 || d.ordinal.is_none_or(|n| n == c.ordinal);
    let kept = |d: &RelationColumn| tracked.iter().any(|c| c.name == d.name && same_place(c, d));
    let mut diff = RelationDiff::default();
    for c in &tracked {
        match described
            .iter()
            .find(|d| d.name == c.name && same_place(c, d))
        {
            None => diff.dropped.push(c.name.clone()),
            Some(d) if d.data_type != c.source_type => {
                diff.retyped
                    .push((c.name.clone(), c.source_type.clone(), d.data_type.clone()));
            }
            Some(_) => {}
        }
    }
    let refuse = |why: String| {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "the columns of `{}` changed at the source ({} became {}): {why}; logical \
                 decoding shows no DDL, only the columns, so apply the same change to the \
                 target table and migrate the table again, or run the task again from the start",
                table.name,
                tracked
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.source_type))
                    .collect::<Vec<_>>()
                    .join(", "),
                described
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.data_type))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        )
    };
    let last_kept = described.iter().rposition(kept);
    for (i, d) in described.iter().enumerate() {
        if kept(d) {
            continue;
        }
        if d.default.is_some() && d.missing.is_none() {
            return Err(refuse(format!(
                "new column `{}` has a default, and what the rows already there hold is not \
                 in the log (a volatile default fills them by rewriting the table, which \
                 logical decoding does not carry; a default set after adding the column \
                 looks the same)",
                d.name
            )));
        }
        match d.ordinal {
            Some(n) if tracked.iter().any(|c| c.ordinal == n && c.name != d.name) => {
                let old = tracked
                    .iter()
                    .find(|c| c.ordinal == n)
                    .map_or("", |c| c.name.as_str());
                return Err(refuse(format!(
                    "column `{old}` was renamed to `{}`, which is not replicated",
                    d.name
                )));
            }
            None => {
                return Err(refuse(format!(
                    "new column `{}` is no longer in the source table, so its place cannot \
                     be told",
                    d.name
                )))
            }
            Some(_) => {}
        }
        if last_kept.is_some_and(|k| i < k) {
            return Err(refuse(format!(
                "new column `{}` comes before columns that were there",
                d.name
            )));
        }
        diff.added.push(d.clone());
    }
    Ok(diff)
}

/// `table` after `diff`: columns dropped, retyped, and added at the end with their
/// attribute numbers, `NOT NULL` and defaults.
pub fn apply_relation_diff(table: &mut Table, diff: &RelationDiff) {
    table
        .columns
        .retain(|c| c.generated.is_some() || !diff.dropped.contains(&c.name));
    for (name, _, new) in &diff.retyped {
        if let Some(c) = table.columns.iter_mut().find(|c| &c.name == name) {
            c.source_type.clone_from(new);
        }
    }
    for d in &diff.added {
        table.columns.push(Column {
            ordinal: d.ordinal.unwrap_or_default(),
            nullable: !d.not_null,
            default: d
                .default
                .as_ref()
                .map(|e| dts_core::ColumnDefault::Expression(e.clone())),
            ..Column::new(d.name.clone(), d.data_type.clone())
        });
    }
    if let Some(pk) = &mut table.primary_key {
        pk.columns.retain(|c| !diff.dropped.contains(c));
    }
    if table
        .primary_key
        .as_ref()
        .is_some_and(|pk| pk.columns.is_empty())
    {
        table.primary_key = None;
    }
    table
        .indexes
        .retain(|i| !i.columns.iter().any(|c| diff.dropped.contains(&c.name)));
    table
        .foreign_keys
        .retain(|f| !f.columns.iter().any(|c| diff.dropped.contains(c)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::TableName;

    fn table() -> Table {
        let column = |name: &str, ty: &str, ordinal| Column {
            ordinal,
            ..Column::new(name, ty)
        };
        Table {
            name: TableName::new("s", "t"),
            columns: vec![
                column("id", "bigint", 1),
                column("a", "text", 2),
                column("b", "integer", 3),
            ],
            primary_key: None,
            indexes: vec![],
            foreign_keys: vec![],
            comment: None,
            estimated_rows: 0,
            auto_increment: None,
        }
    }

    fn described(columns: &[(&str, &str, Option<u32>)]) -> Vec<RelationColumn> {
        columns
            .iter()
            .map(|(name, ty, ordinal)| RelationColumn {
                name: (*name).into(),
                data_type: (*ty).into(),
                key: *name == "id",
                ordinal: *ordinal,
                not_null: false,
                default: None,
                missing: None,
            })
            .collect()
    }

    #[test]
    fn finds_added_dropped_and_retyped_columns() {
        let same = described(&[
            ("id", "bigint", Some(1)),
            ("a", "text", Some(2)),
            ("b", "integer", Some(3)),
        ]);
        assert!(relation_diff(&table(), &same).unwrap().is_empty());
        let changed = described(&[
            ("id", "bigint", Some(1)),
            ("b", "numeric(10,2)", Some(3)),
            ("c", "text[]", Some(4)),
        ]);
        let diff = relation_diff(&table(), &changed).unwrap();
        assert_eq!(diff.dropped, ["a"]);
        assert_eq!(
            diff.retyped,
            [("b".into(), "integer".into(), "numeric(10,2)".into())]
        );
        assert_eq!(diff.added.len(), 1);
        let mut t = table();
        apply_relation_diff(&mut t, &diff);
        let now: Vec<(&str, &str)> = t
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.source_type.as_str()))
            .collect();
        assert_eq!(
            now,
            [("id", "bigint"), ("b", "numeric(10,2)"), ("c", "text[]")]
        );
        assert!(relation_diff(&t, &changed).unwrap().is_empty());
    }

    #[test]
    fn refuses_renames_and_columns_it_cannot_place() {
        let renamed = described(&[
            ("id", "bigint", Some(1)),
            ("a", "text", Some(2)),
            ("bee", "integer", Some(3)),
        ]);
        let e = relation_diff(&table(), &renamed).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("`b` was renamed to `bee`"), "{e}");
        assert!(e.to_string().contains("s.t"), "{e}");
        let gone = described(&[("id", "bigint", Some(1)), ("x", "text", None)]);
        assert!(relation_diff(&table(), &gone)
            .unwrap_err()
            .to_string()
            .contains("no longer in the source table"));
        let before = described(&[
            ("id", "bigint", Some(1)),
            ("x", "text", Some(9)),
            ("a", "text", Some(2)),
            ("b", "integer", Some(3)),
        ]);
        assert!(relation_diff(&table(), &before)
            .unwrap_err()
            .to_string()
            .contains("comes before"));
        // Dropped and added again under the same name: a new attribute number.
        let again = described(&[
            ("id", "bigint", Some(1)),
            ("b", "integer", Some(3)),
            ("a", "text", Some(4)),
        ]);
        let diff = relation_diff(&table(), &again).unwrap();
        assert_eq!(diff.dropped, ["a"]);
        assert_eq!(diff.added[0].name, "a");
    }
}
