//! When the server committed the parts that hold the run's rows, by its own record
//! (`system.part_log`): the exact times a visibility poll can only bracket.
//!
//! A row becomes visible when the part its insert wrote is committed; the server logs a
//! `NewPart` record right after (`MergeTreeSink`: `renameTempPartAndAdd`, then
//! `PartLog::addNewPart`). A part a poll saw may be younger: a merge of earlier parts
//! (`MergeParts`, with `merged_from`). Its rows then became visible at the commit of one of the
//! inserts merged into it, so a part resolves to the commits of its insert parts, through
//! merges of merges. Every part written in the window has a record (the log is flushed first),
//! so a source without one was written before it and holds none of the run's rows. A part
//! fetched from a replica or mutated resolves to nothing: its rows may have been visible here
//! before, in other parts.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::rows::unix_millis;
use super::{ClickHouse, ClickHouseError, KeyTable, SYNTAX_ERROR};

/// When the server committed parts of the TA tables, by its `system.part_log`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartCommits {
    /// The server whose log this is (`hostName()`); none when it holds no record.
    pub server: Option<String>,
    /// Each part's insert commits, as logged: its own, or those of the inserts merged into it.
    pub committed: HashMap<(KeyTable, String), Vec<OffsetDateTime>>,
    /// Why the server did not flush its log when asked (no grant, read-only), if it did not:
    /// parts committed within its flush interval may then be missing.
    pub flush_refused: Option<String>,
}

impl ClickHouse {
    /// When the server committed these parts of the TA tables, by the records it logged since
    /// `since`. The log is flushed first (`SYSTEM FLUSH LOGS`) so that parts just written are in
    /// it; a server that refuses the flush is read as it is.
    pub async fn part_commits(
        &self,
        parts: &[(KeyTable, String)],
        since: OffsetDateTime,
    ) -> Result<PartCommits, ClickHouseError> {
        let started = std::time::Instant::now();
        let flushed = self.flush_part_log().await;
        let flush_ms = started.elapsed().as_secs_f64() * 1e3;
        // Every insert and merge of both tables in the window: a merged part's sources are
        // not known before its record is read, and the window holds a few hundred at most.
        let records = self
            .bounded(
                self.client
                    .query(
                        "SELECT table, part_name, toString(event_type) AS event, \
                         toUnixTimestamp64Micro(event_time_microseconds) AS logged_us, \
                         merged_from, hostName() AS server FROM system.part_log \
                         WHERE event_date >= toDate(fromUnixTimestamp64Milli(?, 'UTC')) \
                         AND event_time_microseconds >= fromUnixTimestamp64Milli(?, 'UTC') \
                         AND event_type IN ('NewPart', 'MergeParts', 'DownloadPart', \
                                            'MutatePart') \
                         AND database = currentDatabase() \
                         AND table IN ('ta_microbars', 'ta_signals')",
                    )
                    .bind(unix_millis(since))
                    .bind(unix_millis(since))
                    .fetch_all::<Record>(),
            )
            .await?;
        tracing::debug!(
            flush_ms,
            read_ms = started.elapsed().as_secs_f64() * 1e3 - flush_ms,
            records = records.len(),
            "part log"
        );
        let server = records.first().map(|r| r.server.clone());
        let log = Log::of(records);
        let committed = parts
            .iter()
            .filter_map(|(t, part)| Some(((*t, part.clone()), log.commits(t.table(), part)?)))
            .collect();
        Ok(PartCommits {
            server,
            committed,
            flush_refused: flushed.err(),
        })
    }

    /// Asks the server to write its part log now; why not, if it did not. Older servers flush
    /// every log at once, without a name.
    async fn flush_part_log(&self) -> Result<(), String> {
        let named = self
            .bounded(self.client.query("SYSTEM FLUSH LOGS part_log").execute())
            .await;
        let refused = match named {
            Ok(()) => return Ok(()),
            Err(e) if e.server_code() == Some(SYNTAX_ERROR) => self
                .bounded(self.client.query("SYSTEM FLUSH LOGS").execute())
                .await
                .err(),
            Err(e) => Some(e),
        };
        refused.map_or(Ok(()), |e| Err(e.to_string()))
    }
}

#[derive(Debug, Clone, clickhouse::Row, serde::Deserialize)]
struct Record {
    table: String,
    part_name: String,
    /// `NewPart` (an insert), `MergeParts`, `DownloadPart` (a fetch), `MutatePart`.
    event: String,
    logged_us: i64,
    merged_from: Vec<String>,
    server: String,
}

/// The records by table and part.
struct Log(HashMap<(String, String), Record>);

impl Log {
    fn of(records: Vec<Record>) -> Self {
        Log(records
            .into_iter()
            .map(|r| ((r.table.clone(), r.part_name.clone()), r))
            .collect())
    }

    /// The commits of the inserts in the window behind `part`: none when the part has no
    /// record, or when a fetch or a mutation is behind it.
    fn commits(&self, table: &str, part: &str) -> Option<Vec<OffsetDateTime>> {
        let mut commits = Vec::new();
        // A part busy in the window is merged again and again (one level per merge, hundreds
        // in a minute): every record is visited once.
        let mut visited = std::collections::HashSet::new();
        let mut todo = vec![part.to_string()];
        while let Some(name) = todo.pop() {
            if !visited.insert(name.clone()) {
                continue;
            }
            let Some(r) = self.0.get(&(table.to_string(), name)) else {
                // Written before the window (the part seen has a record: see `part_commits`).
                if visited.len() == 1 {
                    return None;
                }
                continue;
            };
            match r.event.as_str() {
                "NewPart" => commits.push(
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(r.logged_us) * 1_000)
                        .ok()?,
                ),
                "MergeParts" => todo.extend(r.merged_from.iter().cloned()),
                _ => return None,
            }
        }
        Some(commits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(part: &str, logged_ms: i64, merged_from: &[&str]) -> Record {
        Record {
            table: "ta_microbars".into(),
            part_name: part.into(),
            event: if merged_from.is_empty() {
                "NewPart"
            } else {
                "MergeParts"
            }
            .into(),
            logged_us: logged_ms * 1_000,
            merged_from: merged_from.iter().map(|s| s.to_string()).collect(),
            server: "ch-0".into(),
        }
    }

    fn at(ms: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms)
    }

    #[test]
    fn a_part_resolves_to_the_commits_of_the_inserts_behind_it() {
        let log = Log::of(vec![
            record("all_1_1_1", 100, &[]),
            record("all_2_2_1", 200, &[]),
            record("all_3_3_1", 300, &[]),
            record("all_1_2_2", 250, &["all_1_1_1", "all_2_2_1"]),
            record("all_1_3_3", 350, &["all_1_2_2", "all_3_3_1"]),
            // A merge with a part written before the window.
            record("all_0_4_2", 400, &["all_0_0_1", "all_4_4_1"]),
            record("all_4_4_1", 390, &[]),
            // A part fetched from a replica, and a merge of it.
            Record {
                event: "DownloadPart".into(),
                ..record("all_5_5_1", 500, &[])
            },
            record("all_4_5_2", 510, &["all_4_4_1", "all_5_5_1"]),
        ]);
        assert_eq!(
            log.commits("ta_microbars", "all_2_2_1"),
            Some(vec![at(200)])
        );
        // Merges of merges down to the inserts; the merges' own times are not commits of rows.
        let mut merged = log.commits("ta_microbars", "all_1_3_3").unwrap();
        merged.sort();
        assert_eq!(merged, [at(100), at(200), at(300)]);
        // A source older than the window holds none of the run's rows.
        assert_eq!(
            log.commits("ta_microbars", "all_0_4_2"),
            Some(vec![at(390)])
        );
        // A part merged once a second with each new insert, for minutes: down to every insert.
        let mut chain = vec![record("m_0", 0, &["p_0"]), record("p_0", 0, &[])];
        for i in 1..300 {
            let from = [format!("m_{}", i - 1), format!("p_{i}")];
            let from: Vec<&str> = from.iter().map(String::as_str).collect();
            chain.push(record(&format!("p_{i}"), i * 1000, &[]));
            chain.push(record(&format!("m_{i}"), i * 1000 + 1, &from));
        }
        let deep = Log::of(chain).commits("ta_microbars", "m_299").unwrap();
        assert_eq!(deep.len(), 300);
        // A fetch behind it, or no record of the part itself: nothing.
        assert_eq!(log.commits("ta_microbars", "all_5_5_1"), None);
        assert_eq!(log.commits("ta_microbars", "all_4_5_2"), None);
        assert_eq!(log.commits("ta_microbars", "all_9_9_1"), None);
        // Parts are named per table.
        assert_eq!(log.commits("ta_signals", "all_2_2_1"), None);
    }
}
