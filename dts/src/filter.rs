//! Row filters of a task (`[tables."pattern"] where = "…"`): parsed against the source
//! schema, pushed down into the source's snapshot reads (full load, verification), and
//! evaluated on each captured row change during replication.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use dts_connectors::Source;
use dts_core::{
    Catalog, Change, ChangeEvent, ChangeSource, Engine, Error, ErrorKind, Position, Result,
    RowFilters, TableName,
};
use dts_schema::filter::RowFilter;

use crate::config::TaskConfig;

/// The row filters of the tables of `catalog` (the selected source tables), parsed in the
/// dialect of the source engine `engine` (on PostgreSQL, with the database's default
/// collation `default_collation`).
///
/// # Errors
///
/// A configuration error for a condition that does not parse or names an unknown column,
/// or two `[tables]` patterns that both set `where` for a table.
pub(crate) fn compile(
    config: &TaskConfig,
    catalog: &Catalog,
    engine: Engine,
    default_collation: Option<&str>,
) -> Result<Vec<RowFilter>> {
    let mut out = Vec::new();
    if config.tables.is_empty() {
        return Ok(out);
    }
    for table in catalog.schemas.iter().flat_map(|s| &s.tables) {
        if let Some(text) = config.table_options(&table.name)?.filter {
            out.push(RowFilter::parse_in(
                engine,
                table,
                &text,
                default_collation,
            )?);
        }
    }
    Ok(out)
}

/// The conditions of `filters` for the source's snapshot reads.
pub(crate) fn pushdown(filters: &[RowFilter]) -> RowFilters {
    Arc::new(
        filters
            .iter()
            .map(|f| (f.table().clone(), f.text().to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// `source` reading only the rows the task's filters keep, for the tables of `catalog`.
///
/// # Errors
///
/// As [`compile`].
pub(crate) fn filtered_source(
    config: &TaskConfig,
    source: Source,
    catalog: &Catalog,
) -> Result<Source> {
    // The conditions go to the source as written: no collation is needed to check them.
    let filters = compile(config, catalog, source.engine(), None)?;
    if filters.is_empty() {
        return Ok(source);
    }
    Ok(source.with_row_filters(pushdown(&filters)))
}

/// The conditions of the tables `tables` (source names) as the task file writes them, for
/// reads of tables whose filters were checked when the run started.
///
/// # Errors
///
/// Two `[tables]` patterns that both set `where` for a table.
pub(crate) fn pushdown_of<'a>(
    config: &TaskConfig,
    tables: impl IntoIterator<Item = &'a TableName>,
) -> Result<RowFilters> {
    let mut out = BTreeMap::new();
    if !config.tables.is_empty() {
        for t in tables {
            if let Some(text) = config.table_options(t)?.filter {
                out.insert(t.clone(), text);
            }
        }
    }
    Ok(Arc::new(out))
}

/// A change source that passes on only the row changes of rows the filters keep, turning
/// an update that moves a row out of its table's filter into a delete of the old row and
/// one that moves a row into it into an insert of the new row.
pub(crate) struct RowFilterSource<S> {
    inner: S,
    filters: HashMap<TableName, RowFilter>,
}

impl<S> RowFilterSource<S> {
    /// Wraps `inner`; tables without a filter pass unchanged.
    pub(crate) fn new(inner: S, filters: &[RowFilter]) -> Self {
        Self {
            inner,
            filters: filters
                .iter()
                .map(|f| (f.table().clone(), f.clone()))
                .collect(),
        }
    }

    /// What becomes of one change: itself, another change, or nothing.
    fn filter(&self, change: Change) -> Result<Option<Change>> {
        let table = match &change {
            Change::Insert { table, .. }
            | Change::Update { table, .. }
            | Change::Delete { table, .. }
            | Change::Relation { table, .. } => table,
            _ => return Ok(Some(change)),
        };
        let Some(filter) = self.filters.get(table) else {
            return Ok(Some(change));
        };
        Ok(match change {
            Change::Insert { table, row } => filter
                .matches(&row)?
                .then_some(Change::Insert { table, row }),
            Change::Delete { table, row } => filter
                .matches(&row)?
                .then_some(Change::Delete { table, row }),
            Change::Update {
                table,
                before,
                after,
            } => match (filter.matches(&before)?, filter.matches(&after)?) {
                (true, true) => Some(Change::Update {
                    table,
                    before,
                    after,
                }),
                (true, false) => Some(Change::Delete { table, row: before }),
                (false, true) => {
                    // The whole new row is needed; a source that left unchanged values out
                    // of it (PostgreSQL without `REPLICA IDENTITY FULL`) cannot give it.
                    if after.columns.len() < before.columns.len() {
                        return Err(Error::new(
                            ErrorKind::Unsupported,
                            format!(
                                "table `{table}`: an update moved row {} into the filter \
                                 `{}`, but the change does not carry the values it left \
                                 unchanged; set `ALTER TABLE {table} REPLICA IDENTITY FULL` \
                                 on the source",
                                after.key_text(filter.columns()),
                                filter.text()
                            ),
                        ));
                    }
                    Some(Change::Insert { table, row: after })
                }
                (false, false) => None,
            },
            Change::Relation { table, columns } => {
                if let Some(missing) = filter
                    .columns()
                    .iter()
                    .find(|c| !columns.iter().any(|r| &r.name == *c))
                {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "table `{table}`: column `{missing}` that the filter `{}` reads \
                             was dropped or renamed on the source; replication stops (change \
                             the filter and start the task again)",
                            filter.text()
                        ),
                    ));
                }
                Some(Change::Relation { table, columns })
            }
            other => Some(other),
        })
    }
}

#[dts_core::async_trait]
impl<S: ChangeSource> ChangeSource for RowFilterSource<S> {
    async fn next_events(&mut self, max: usize, timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let events = self.inner.next_events(max, timeout).await?;
        if self.filters.is_empty() {
            return Ok(events);
        }
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let ChangeEvent {
                change,
                position,
                timestamp,
            } = e;
            if let Some(change) = self.filter(change)? {
                out.push(ChangeEvent {
                    change,
                    position,
                    timestamp,
                });
            }
        }
        Ok(out)
    }

    fn acknowledge(&mut self, position: &Position) {
        self.inner.acknowledge(position);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dts_core::{Column, Lsn, RowImage, Table, Value};

    use super::*;

    /// Changes handed out once, as a source's log would deliver them.
    struct Log(Vec<Change>);

    #[dts_core::async_trait]
    impl ChangeSource for Log {
        async fn next_events(&mut self, _: usize, _: Duration) -> Result<Vec<ChangeEvent>> {
            Ok(std::mem::take(&mut self.0)
                .into_iter()
                .map(|change| ChangeEvent {
                    change,
                    position: Position::Lsn(Lsn(1)),
                    timestamp: 0,
                })
                .collect())
        }

        fn acknowledge(&mut self, _: &Position) {}
    }

    fn orders() -> Table {
        Table {
            name: TableName::new("shop", "orders"),
            columns: vec![Column::new("id", "int"), Column::new("region", "text")],
            primary_key: None,
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            comment: None,
            estimated_rows: 0,
            auto_increment: None,
        }
    }

    fn row(id: i64, region: &str) -> RowImage {
        RowImage {
            columns: Arc::new(vec!["id".into(), "region".into()]),
            values: vec![Value::Int(id), Value::Text(region.into())],
        }
    }

    fn update(before: RowImage, after: RowImage) -> Change {
        Change::Update {
            table: TableName::new("shop", "orders"),
            before,
            after,
        }
    }

    async fn run(changes: Vec<Change>) -> Result<Vec<Change>> {
        let filter = RowFilter::parse(Engine::Postgres, &orders(), "region = 'eu'")?;
        let mut source = RowFilterSource::new(Log(changes), &[filter]);
        Ok(source
            .next_events(100, Duration::ZERO)
            .await?
            .into_iter()
            .map(|e| e.change)
            .collect())
    }

    #[tokio::test]
    async fn updates_crossing_the_filter_become_deletes_and_inserts() {
        let t = TableName::new("shop", "orders");
        let other = TableName::new("shop", "other");
        let out = run(vec![
            Change::Begin,
            Change::Insert {
                table: t.clone(),
                row: row(1, "eu"),
            },
            Change::Insert {
                table: t.clone(),
                row: row(2, "us"),
            },
            Change::Insert {
                table: other.clone(),
                row: row(3, "us"),
            },
            update(row(1, "eu"), row(1, "eu")),
            update(row(1, "eu"), row(1, "us")),
            update(row(2, "us"), row(2, "eu")),
            update(row(4, "us"), row(4, "uk")),
            Change::Delete {
                table: t.clone(),
                row: row(2, "eu"),
            },
            Change::Delete {
                table: t.clone(),
                row: row(5, "us"),
            },
            Change::Truncate { table: t.clone() },
            Change::Commit,
        ])
        .await
        .unwrap();
        assert_eq!(
            out,
            vec![
                Change::Begin,
                Change::Insert {
                    table: t.clone(),
                    row: row(1, "eu")
                },
                Change::Insert {
                    table: other,
                    row: row(3, "us")
                },
                update(row(1, "eu"), row(1, "eu")),
                Change::Delete {
                    table: t.clone(),
                    row: row(1, "eu")
                },
                Change::Insert {
                    table: t.clone(),
                    row: row(2, "eu")
                },
                Change::Delete {
                    table: t.clone(),
                    row: row(2, "eu")
                },
                Change::Truncate { table: t },
                Change::Commit,
            ]
        );
    }

    #[tokio::test]
    async fn a_row_moving_in_without_its_unchanged_values_stops() {
        let after = RowImage {
            columns: Arc::new(vec!["region".into()]),
            values: vec![Value::Text("eu".into())],
        };
        let e = run(vec![update(row(1, "us"), after)]).await.unwrap_err();
        assert!(e.message().contains("REPLICA IDENTITY FULL"), "{e}");
        // A relation without a column the filter reads stops too.
        let e = run(vec![Change::Relation {
            table: TableName::new("shop", "orders"),
            columns: Vec::new(),
        }])
        .await
        .unwrap_err();
        assert!(
            e.message().contains("`id`") || e.message().contains("`region`"),
            "{e}"
        );
    }
}
