//! Pages unlike the stand-in's in ways the real one is: closed lists left in the DOM, UInt64 as
//! JSON numbers.

use std::time::Duration;

use serde_json::Value;

use super::{check, stage};
use crate::common;
use crate::common::seeded::{config, PrivateJangar, SeededRun};

/// A page with two Selects whose lists hold an option with the same label, one list closed but
/// still in the DOM (as Base UI leaves it, jangar.md §6.3): the stage must pick the option of the
/// list its trigger opened, by aria-controls or else as the only visible list.
const TWO_LISTS: &str = r#"<!doctype html><html><body>
<h1 id="log"></h1>
<button id="a" role="combobox">A</button>
<button id="b" role="combobox">B</button>
<button id="c" role="combobox">C</button>
<button id="none" role="combobox">none</button>
<div hidden id="pa"><div role="listbox" id="la"><div role="option"><div>X</div></div></div></div>
<div hidden id="pb"><div role="listbox" id="lb"><div role="option"><div>X</div></div></div></div>
<div hidden id="pc"><div role="listbox" id="lc"><div role="option"><div>X</div></div></div></div>
<script>
  // The options clicked, in order, as the page's heading (which the snapshot reads).
  for (const k of ['a', 'b', 'c']) {
    document.querySelector('#l' + k + ' [role=option]').addEventListener('click', () => {
      document.getElementById('log').textContent += k
      document.getElementById('p' + k).hidden = true
      document.getElementById(k).removeAttribute('aria-controls')
    })
  }
  document.getElementById('b').addEventListener('click', () => {
    document.getElementById('pb').hidden = false
    document.getElementById('b').setAttribute('aria-controls', 'lb')
  })
  // C opens its list without naming it.
  document.getElementById('c').addEventListener('click', () => {
    document.getElementById('pc').hidden = false
  })
</script></body></html>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_come_only_from_the_open_list() {
    use torghut_e2e::stage::browser::{model::PageModel, session::Session, BrowserError};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async { axum::response::Html(TWO_LISTS) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let model = PageModel::builtin();
    let _browser = common::browser_slot();
    let session = Session::open(
        Some(&common::webdriver_url()),
        &model,
        Duration::from_secs(10),
    )
    .await
    .expect("a chromedriver session (scripts/stack up starts chromedriver)");
    let outcome = async {
        session.goto(&format!("http://{addr}/")).await?;
        let wait = Duration::from_secs(2);
        // List A is closed (hidden) but its "X" comes first in the DOM.
        session.choose("#b", "X", wait).await?;
        session.choose("#c", "X", wait).await?;
        let missing = session
            .choose("#none", "X", Duration::from_millis(300))
            .await;
        let clicked = session.snapshot().await?.heading;
        Ok::<_, BrowserError>((clicked, missing))
    }
    .await;
    session.close().await;
    let (clicked, missing) = outcome.expect("browser commands");
    // B's option through aria-controls, C's as the only visible list; never A's.
    assert_eq!(clicked.as_deref(), Some("bc"));
    let err = missing.expect_err("no list opened: nothing to pick");
    assert!(
        err.to_string()
            .contains("the #none dropdown opened no list"),
        "{err}"
    );
}

/// Jangar on ClickHouse ≥ 25.8 sends UInt64 as JSON numbers (jangar.md §6.7): the page draws the
/// same counts, so the checklist passes (the api stage reports the drift as a warning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_survives_uint64_as_numbers() {
    let setup = SeededRun::new("CHART", 30, Duration::from_secs(2)).await;
    let jangar = PrivateJangar::start(
        setup.primary.name(),
        &["AMD"],
        &["--int64", "unquoted"],
        &[],
    )
    .await;
    let report = stage(&setup, &config(&jangar.url, &setup.artifacts, "")).await;
    let shown = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(
        report.verdict,
        torghut_e2e::domain::report::Verdict::Pass,
        "{shown}"
    );
    // The rows really came as numbers.
    let bars: Value =
        serde_json::from_slice(&std::fs::read(setup.artifacts.join("02-bars.json")).unwrap())
            .unwrap();
    assert!(
        bars["body"]["items"][0]["seq"].is_u64(),
        "{}",
        bars["body"]["items"][0]
    );
    assert!(
        check(&report, "2-candles")
            .detail
            .contains("they are the oracle's 30 bars"),
        "{shown}"
    );
}
