//! The schema check: the database, both TA tables with the expected columns and types and a
//! ReplacingMergeTree engine, and replicas that can take writes.

use clickhouse::Row;
use serde::Deserialize;

use super::{ClickHouse, ClickHouseError, UNKNOWN_DATABASE};
use crate::domain::model::TA_TABLES;

impl ClickHouse {
    /// Checks the database, both TA tables, their columns, types and engine.
    pub async fn check_schema(&self) -> Result<Vec<SchemaProblem>, ClickHouseError> {
        let db = self.database().to_string();
        let databases = self
            .bounded(
                self.client
                    .query("SELECT name FROM system.databases WHERE name = ?")
                    .bind(&db)
                    .fetch_all::<String>(),
            )
            .await;
        // ClickHouse refuses any query whose `database` parameter names a missing database.
        let databases = match databases {
            Err(e) if e.server_code() == Some(UNKNOWN_DATABASE) => Vec::new(),
            other => other?,
        };
        if databases.is_empty() {
            return Ok(vec![SchemaProblem::DatabaseMissing(db)]);
        }
        let mut problems = Vec::new();
        for (table, expected) in TA_TABLES {
            problems.extend(self.check_table(&db, table, expected).await?);
        }
        Ok(problems)
    }

    async fn check_table(
        &self,
        db: &str,
        table: &str,
        expected: &[(&str, &str)],
    ) -> Result<Vec<SchemaProblem>, ClickHouseError> {
        let engine = self
            .bounded(
                self.client
                    .query("SELECT engine FROM system.tables WHERE database = ? AND name = ?")
                    .bind(db)
                    .bind(table)
                    .fetch_optional::<String>(),
            )
            .await?;
        let Some(engine) = engine else {
            return Ok(vec![SchemaProblem::TableMissing(format!("{db}.{table}"))]);
        };
        let columns = self
            .bounded(
                self.client
                    .query(
                        "SELECT name, type FROM system.columns \
                         WHERE database = ? AND table = ? ORDER BY position",
                    )
                    .bind(db)
                    .bind(table)
                    .fetch_all::<ColumnRow>(),
            )
            .await?;
        Ok(compare_table(
            &format!("{db}.{table}"),
            &engine,
            &columns,
            expected,
        ))
    }

    /// Replicas that cannot take writes (`operations.md` failure modes: Keeper lost, read-only).
    pub async fn unhealthy_replicas(&self) -> Result<Vec<String>, ClickHouseError> {
        let rows = self
            .bounded(
                self.client
                    .query(
                        "SELECT table, is_readonly, is_session_expired FROM system.replicas \
                         WHERE database = ? AND table IN ('ta_microbars', 'ta_signals')",
                    )
                    .bind(self.database())
                    .fetch_all::<ReplicaRow>(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter(|r| r.is_readonly != 0 || r.is_session_expired != 0)
            .map(|r| {
                format!(
                    "{}.{} (readonly={}, session_expired={})",
                    self.database(),
                    r.table,
                    r.is_readonly,
                    r.is_session_expired
                )
            })
            .collect())
    }
}

#[derive(Debug, Row, Deserialize)]
struct ColumnRow {
    name: String,
    r#type: String,
}

#[derive(Debug, Row, Deserialize)]
struct ReplicaRow {
    table: String,
    is_readonly: u8,
    is_session_expired: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaProblem {
    DatabaseMissing(String),
    TableMissing(String),
    WrongEngine {
        table: String,
        engine: String,
    },
    ColumnMissing {
        table: String,
        column: String,
    },
    WrongType {
        table: String,
        column: String,
        expected: String,
        actual: String,
    },
}

impl std::fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DatabaseMissing(db) => write!(f, "database {db} does not exist"),
            Self::TableMissing(t) => write!(f, "table {t} does not exist"),
            Self::WrongEngine { table, engine } => {
                write!(
                    f,
                    "table {table} has engine {engine}, expected a ReplacingMergeTree"
                )
            }
            Self::ColumnMissing { table, column } => write!(f, "{table}.{column} is missing"),
            Self::WrongType {
                table,
                column,
                expected,
                actual,
            } => {
                write!(f, "{table}.{column} is {actual}, expected {expected}")
            }
        }
    }
}

/// Extra columns are allowed (production adds columns over time); missing or retyped ones are not.
fn compare_table(
    table: &str,
    engine: &str,
    columns: &[ColumnRow],
    expected: &[(&str, &str)],
) -> Vec<SchemaProblem> {
    let mut problems = Vec::new();
    // Production runs ReplicatedReplacingMergeTree; one node runs ReplacingMergeTree.
    if !engine.ends_with("ReplacingMergeTree") {
        problems.push(SchemaProblem::WrongEngine {
            table: table.into(),
            engine: engine.into(),
        });
    }
    for (name, ty) in expected {
        match columns.iter().find(|c| c.name == *name) {
            None => problems.push(SchemaProblem::ColumnMissing {
                table: table.into(),
                column: (*name).into(),
            }),
            Some(c) if c.r#type != *ty => problems.push(SchemaProblem::WrongType {
                table: table.into(),
                column: (*name).into(),
                expected: (*ty).into(),
                actual: c.r#type.clone(),
            }),
            Some(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_comparison_names_each_problem() {
        let cols = vec![
            ColumnRow {
                name: "symbol".into(),
                r#type: "String".into(),
            },
            ColumnRow {
                name: "extra".into(),
                r#type: "UInt8".into(),
            },
        ];
        let expected = &[("symbol", "LowCardinality(String)"), ("seq", "UInt64")];
        let problems = compare_table("db.t", "MergeTree", &cols, expected);
        assert_eq!(problems.len(), 3, "{problems:?}");
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(text[0].contains("engine MergeTree"));
        assert!(text[1].contains("db.t.symbol is String, expected LowCardinality(String)"));
        assert!(text[2].contains("db.t.seq is missing"));
        let ok = compare_table(
            "db.t",
            "ReplicatedReplacingMergeTree",
            &[ColumnRow {
                name: "seq".into(),
                r#type: "UInt64".into(),
            }],
            &[("seq", "UInt64")],
        );
        assert!(ok.is_empty());
    }
}
