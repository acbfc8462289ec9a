use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::adapter::clickhouse::ClickHouseError;
use crate::suite::scenario::fake;

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s)
}

fn window(names: &[&str], after: i64, minutes_after: Option<i64>) -> Window {
    Window {
        symbols: names.iter().map(|s| s.to_string()).collect(),
        after: at(after),
        minutes_after: minutes_after.map(at),
    }
}

fn key(table: KeyTable, symbol: &str, s: i64) -> (KeyTable, RowKey) {
    let key = RowKey {
        symbol: symbol.into(),
        event_ts: at(s),
        seq: 1,
    };
    (table, key)
}

/// A server holding `stored`, answering after 50 ms with the union's share (it filters as
/// the real queries do), counting its queries and keeping their unions.
fn server<'a, A: Ask + 'a, T: Share<A> + Send + 'static>(
    stored: &'a T,
    queries: &'a AtomicUsize,
    unions: &'a std::sync::Mutex<Vec<A>>,
) -> impl Fn(A) -> std::pin::Pin<Box<dyn Future<Output = Result<T, ClickHouseError>> + Send>> + 'a {
    move |union: A| {
        queries.fetch_add(1, Ordering::SeqCst);
        let rows = stored.share(&union);
        unions.lock().unwrap().push(union);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(rows)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn requests_made_while_a_query_is_out_share_the_next_and_get_their_own_rows() {
    let stored = RowKeys {
        keys: vec![
            key(KeyTable::Microbars, "A", 10),
            key(KeyTable::Signals, "A", 10),
            key(KeyTable::Microbars, "B", 20),
            key(KeyTable::MinuteSignals, "B", 0),
        ],
        parts: [
            (key(KeyTable::Microbars, "A", 10), "all_1_1_1".to_string()),
            (key(KeyTable::Microbars, "B", 20), "all_2_2_1".to_string()),
        ]
        .into_iter()
        .collect(),
        copies: [(key(KeyTable::Microbars, "B", 20), 1)]
            .into_iter()
            .collect(),
        server: Some("ch-0".into()),
        server_start: Some(at(1)),
        server_executing: Some(at(2)),
    };
    let (queries, unions) = (AtomicUsize::new(0), std::sync::Mutex::new(Vec::new()));
    let query = server(&stored, &queries, &unions);
    let reads = SharedReads::default();
    let w = [
        window(&["A"], 0, None),
        window(&["B"], 0, Some(-60)),
        window(&["A", "B"], 15, None),
    ];
    let (a, b, late) = tokio::join!(
        reads.keys.get(&query, &w[0]),
        reads.keys.get(&query, &w[1]),
        reads.keys.get(&query, &w[2]),
    );
    // The first went out alone; the other two waited for it and went out together.
    assert_eq!(queries.load(Ordering::SeqCst), 2);
    assert_eq!((b.sent, b.answered), (late.sent, late.answered));
    assert!(b.sent >= a.answered);
    let a = a.result.unwrap();
    assert_eq!(
        a.keys,
        [
            key(KeyTable::Microbars, "A", 10),
            key(KeyTable::Signals, "A", 10)
        ]
    );
    // The server's clock readings and name go to every share; the parts of its own keys.
    assert_eq!(
        (a.server_start, a.server_executing, a.server.as_deref()),
        (Some(at(1)), Some(at(2)), Some("ch-0"))
    );
    assert_eq!(
        a.parts.into_iter().collect::<Vec<_>>(),
        [(key(KeyTable::Microbars, "A", 10), "all_1_1_1".to_string())]
    );
    assert!(a.copies.is_empty());
    let b = b.result.unwrap();
    assert_eq!(
        b.keys,
        [
            key(KeyTable::Microbars, "B", 20),
            key(KeyTable::MinuteSignals, "B", 0)
        ]
    );
    assert_eq!(
        b.copies.into_iter().collect::<Vec<_>>(),
        [(key(KeyTable::Microbars, "B", 20), 1)]
    );
    // Only its own window: after 15 s, and no 1-minute rows it did not ask for.
    assert_eq!(
        late.result.unwrap().keys,
        [key(KeyTable::Microbars, "B", 20)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_read_over_several_windows_gives_each_its_rows() {
    let bar = |symbol: &str, s: i64| fake::microbar(symbol, at(s), 1, 100.0);
    let signal = |symbol: &str, s: i64| fake::signal_of(&bar(symbol, s), "PT1S");
    let stored = Rows {
        bars: vec![bar("A", 10), bar("B", 5), bar("B", 20)],
        signals: vec![signal("A", 10), signal("B", 20)],
        minute_signals: vec![signal("B", 0)],
        unmerged: vec![("A".into(), 2)],
    };
    let (queries, unions) = (AtomicUsize::new(0), std::sync::Mutex::new(Vec::new()));
    let query = server(&stored, &queries, &unions);
    let reads = SharedReads::default();
    let w = [window(&["A"], 0, None), window(&["B"], 15, Some(-60))];
    // Asked at once: the full read lingers for the other, and they go out as one.
    let (a, b) = tokio::join!(reads.rows.get(&query, &w[0]), reads.rows.get(&query, &w[1]));
    assert_eq!(queries.load(Ordering::SeqCst), 1);
    // The union: both symbols, from the earliest `after`, the 1-minute rows B asked for.
    let union = window(&["A", "B"], 0, Some(-60));
    assert_eq!(unions.lock().unwrap()[0], union);
    let all = reads.rows.get(&query, &union).await;
    assert_eq!(all.result.unwrap(), stored);
    assert_eq!(
        a.result.unwrap(),
        Rows {
            bars: vec![bar("A", 10)],
            signals: vec![signal("A", 10)],
            minute_signals: Vec::new(),
            unmerged: vec![("A".into(), 2)],
        }
    );
    assert_eq!(
        b.result.unwrap(),
        Rows {
            bars: vec![bar("B", 20)],
            signals: vec![signal("B", 20)],
            minute_signals: vec![signal("B", 0)],
            unmerged: Vec::new(),
        }
    );
}

#[tokio::test(start_paused = true)]
async fn lookups_asked_within_the_linger_go_out_as_one_and_each_gets_its_parts() {
    let part = |t: KeyTable, name: &str| (t, name.to_string());
    let stored = PartCommits {
        server: Some("ch-0".into()),
        committed: [
            (part(KeyTable::Microbars, "all_1_1_0"), vec![at(1)]),
            (part(KeyTable::Signals, "all_1_1_0"), vec![at(2)]),
            (part(KeyTable::Microbars, "all_2_2_0"), vec![at(3)]),
        ]
        .into_iter()
        .collect(),
        flush_refused: Some("readonly".into()),
    };
    let (queries, unions) = (AtomicUsize::new(0), std::sync::Mutex::new(Vec::new()));
    let query = server(&stored, &queries, &unions);
    let reads = SharedReads::default();
    let asked = [
        PartsAsked {
            parts: vec![part(KeyTable::Microbars, "all_1_1_0")],
            since: at(10),
        },
        PartsAsked {
            parts: vec![
                part(KeyTable::Signals, "all_1_1_0"),
                part(KeyTable::Microbars, "all_2_2_0"),
            ],
            since: at(5),
        },
    ];
    let (first, second) = tokio::join!(reads.commits.get(&query, &asked[0]), async {
        // Within the linger of the first: it joins the first's query.
        tokio::time::sleep(LINGER / 2).await;
        reads.commits.get(&query, &asked[1]).await
    });
    assert_eq!(queries.load(Ordering::SeqCst), 1);
    let union = unions.lock().unwrap()[0].clone();
    assert_eq!((union.parts.len(), union.since), (3, at(5)));
    let (first, second) = (first.result.unwrap(), second.result.unwrap());
    assert_eq!(first.committed.len(), 1);
    assert_eq!(first.committed[&asked[0].parts[0]], [at(1)]);
    assert_eq!(second.committed.len(), 2);
    assert_eq!(second.committed[&asked[1].parts[1]], [at(3)]);
    for share in [&first, &second] {
        assert_eq!(share.server.as_deref(), Some("ch-0"));
        assert_eq!(share.flush_refused.as_deref(), Some("readonly"));
    }
    // Asked after the linger, it goes out alone.
    let third = async {
        tokio::time::sleep(LINGER * 2).await;
        reads.commits.get(&query, &asked[1]).await
    };
    let (_, _) = tokio::join!(reads.commits.get(&query, &asked[0]), third);
    assert_eq!(queries.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn requests_go_out_beside_a_slow_query_one_at_a_time() {
    // The first query takes a second, the others 50 ms.
    let queries = AtomicUsize::new(0);
    let query = |_: Window| {
        let n = queries.fetch_add(1, Ordering::SeqCst);
        async move {
            let took = if n == 0 { 1_000 } else { 50 };
            tokio::time::sleep(Duration::from_millis(took)).await;
            Ok::<_, ClickHouseError>(RowKeys::default())
        }
    };
    let reads = SharedReads::default();
    let w = window(&["A"], 0, None);
    let start = Instant::now();
    let after = |ms: u64| {
        let (reads, w, query) = (&reads, &w, &query);
        async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            reads.keys.get(query, w).await;
            start.elapsed().as_millis()
        }
    };
    let (slow, beside, next) = tokio::join!(after(0), after(10), after(160));
    // Asked 10 ms into the slow query: out beside it at 150 ms, back at 200.
    assert_eq!(beside, 200);
    // Asked while two were out: out when the one beside came back, at 200.
    assert_eq!(next, 250);
    assert_eq!(slow, 1_000);
    assert_eq!(queries.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_query_fails_every_request_it_served() {
    let query = |_: Window| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err::<RowKeys, _>(ClickHouseError::Timeout(Duration::from_secs(5)))
    };
    let reads = SharedReads::default();
    let w = ["A", "B", "C"].map(|s| window(&[s], 0, None));
    let (a, b, c) = tokio::join!(
        reads.keys.get(&query, &w[0]),
        reads.keys.get(&query, &w[1]),
        reads.keys.get(&query, &w[2]),
    );
    for answer in [a, b, c] {
        assert!(matches!(answer.result, Err(ClickHouseError::Timeout(_))));
    }
}
