//! Rows through the API judged against ClickHouse and the oracle.

use crate::adapter::jangar::Endpoint;
use crate::domain::model::Microbar;
use crate::domain::scenario::Tolerance;
use crate::stage::api::findings::Findings;
use crate::stage::api::rows;

use super::*;

fn judge(
    api: &[Microbar],
    stored: &[Microbar],
    oracle: &[Microbar],
) -> (rows::Judged, Vec<String>) {
    let ignore = |c: &str| c == "ingest_ts";
    let tol = |_: &str| Tolerance::default();
    let oracle = rows::Oracle {
        rows: oracle,
        ignore: &ignore,
        tolerance: &tol,
    };
    let j = rows::judge(api, stored, Some(oracle));
    let mut f = Findings::default();
    j.findings(Endpoint::Bars, "ZZT2E-T-A", "db", &mut f);
    let causes = f
        .into_vec("http://j")
        .into_iter()
        .map(|f| f.cause)
        .collect();
    (j, causes)
}

#[test]
fn equal_rows_pass() {
    let rows = vec![bar(1, 1.0), bar(2, 2.0)];
    let (j, causes) = judge(&rows, &rows, &rows);
    assert!(j.ok(), "{}", j.detail());
    assert!(causes.is_empty());
    assert!(j.detail().starts_with("2/2 rows equal to ClickHouse"));
}

#[test]
fn empty_api_while_clickhouse_has_rows_is_the_wrong_database() {
    let rows = vec![bar(1, 1.0)];
    let (j, causes) = judge(&[], &rows, &rows);
    assert!(!j.ok());
    assert_eq!(causes.len(), 1);
    assert!(
        causes[0].contains("returns no rows where db holds them"),
        "{causes:?}"
    );
}

#[test]
fn different_values_are_serialization() {
    let rows = vec![bar(1, 1.0), bar(2, 2.0)];
    let api = vec![bar(1, 1.0), bar(2, 2.000_000_1)];
    let (j, causes) = judge(&api, &rows, &rows);
    assert!(!j.ok());
    assert!(
        causes[0].contains("differ from ClickHouse's in c"),
        "{causes:?}"
    );
    assert!(causes[0].contains("serialization"));
}

#[test]
fn duplicates_are_visible_without_final() {
    let rows = vec![bar(1, 1.0), bar(2, 2.0)];
    let mut copy = bar(2, 2.0);
    copy.ingest_ts -= time::Duration::milliseconds(1);
    let api = vec![bar(1, 1.0), copy, bar(2, 2.0)];
    let (j, causes) = judge(&api, &rows, &rows);
    assert!(!j.ok());
    assert_eq!(j.duplicates, 1);
    // The newest copy is kept, as ReplacingMergeTree keeps it: no false value difference.
    assert!(j.vs_clickhouse.mismatches.is_empty());
    assert!(causes
        .iter()
        .any(|c| c.contains("1 duplicate rows") && c.contains("FINAL")));
}

#[test]
fn missing_and_extra_rows_point_at_the_query() {
    let rows = vec![bar(1, 1.0), bar(2, 2.0)];
    let (j, causes) = judge(&[bar(1, 1.0), bar(3, 3.0)], &rows, &rows);
    assert!(!j.ok());
    assert!(
        causes[0].contains("returned 1 of the 2 rows db holds"),
        "{causes:?}"
    );
}

#[test]
fn storage_divergence_fails_the_check_without_blaming_the_api() {
    let stored = vec![bar(1, 1.5)];
    let oracle = vec![bar(1, 1.0)];
    let (j, causes) = judge(&stored, &stored, &oracle);
    assert!(!j.ok());
    assert!(causes.is_empty());
    assert!(j.detail().contains("the storage layer"), "{}", j.detail());
}

#[test]
fn no_stored_rows_means_nothing_to_observe() {
    let (j, causes) = judge(&[], &[], &[bar(1, 1.0)]);
    assert!(!j.ok());
    assert!(causes.is_empty());
    assert!(j.detail().contains("nothing to observe"));
}

#[test]
fn order_must_be_ascending() {
    assert_eq!(rows::first_out_of_order(&[bar(1, 1.0), bar(2, 1.0)]), None);
    assert_eq!(
        rows::first_out_of_order(&[bar(1, 1.0), bar(3, 1.0), bar(2, 1.0)]),
        Some(2)
    );
}

#[test]
fn live_comparison_is_a_multiset_without_final() {
    let mut copy = bar(2, 2.0);
    copy.ingest_ts += time::Duration::milliseconds(1);
    let ch = vec![bar(1, 1.0), bar(2, 2.0), copy.clone()];
    assert!(rows::multiset(&[bar(1, 1.0), copy.clone(), bar(2, 2.0)], &ch).is_clean());
    // A merge between the reads: one copy fewer on one side.
    let d = rows::multiset(&[bar(1, 1.0), bar(2, 2.0)], &ch);
    assert_eq!(d.count_differs.len(), 1);
    let d = rows::multiset(&[bar(1, 1.0), bar(2, 2.5), copy], &ch);
    assert_eq!(d.columns, vec!["c".to_string()]);
    let d = rows::multiset(&[bar(9, 1.0)], &ch);
    assert_eq!((d.only_api.len(), d.only_clickhouse.len()), (1, 2));
}
