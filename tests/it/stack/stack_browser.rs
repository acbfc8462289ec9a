//! Real headless Chromium through chromedriver: open a page served on loopback, read the DOM,
//! take a screenshot that decodes as a PNG.

use crate::common;

use axum::response::Html;
use axum::routing::get;
use fantoccini::Locator;

const PAGE: &str = r#"<!doctype html><html lang="en"><head><title>torghut-e2e probe</title></head>
<body style="background:#fff"><h1 id="greeting">Hello from loopback</h1>
<script>document.documentElement.dataset.hydrated = "true";</script></body></html>"#;

#[tokio::test]
async fn chromium_renders_a_loopback_page_and_screenshots_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", get(|| async { Html(PAGE) }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let _browser = common::browser_slot();
    let browser = torghut_e2e::adapter::webdriver::connect(&common::webdriver_url())
        .await
        .expect("a chromedriver session (scripts/stack up starts chromedriver)");
    let result = async {
        browser.goto(&format!("http://{addr}/")).await?;
        let title = browser.title().await?;
        let heading = browser
            .find(Locator::Css("#greeting"))
            .await?
            .text()
            .await?;
        let hydrated = browser
            .execute("return document.documentElement.dataset.hydrated", vec![])
            .await?;
        let png = browser.screenshot().await?;
        Ok::<_, fantoccini::error::CmdError>((title, heading, hydrated, png))
    }
    .await;
    browser.close().await.ok();
    let (title, heading, hydrated, png) = result.expect("browser commands");

    assert_eq!(title, "torghut-e2e probe");
    assert_eq!(heading, "Hello from loopback");
    assert_eq!(hydrated, serde_json::json!("true"));
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let reader = decoder.read_info().expect("screenshot is a PNG");
    let info = reader.info();
    assert!(
        info.width >= 800 && info.height >= 600,
        "{}x{}",
        info.width,
        info.height
    );
}
