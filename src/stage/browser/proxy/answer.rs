//! The answers the proxy makes up: JSON and text responses, an error body, and an empty result
//! in the shape of the call it replaces.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::EmptyShape;

pub(super) type Answer = Response<Full<Bytes>>;

pub(super) fn json_answer(status: u16, body: &Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(body.to_string())));
    *answer.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    answer
}

pub(super) fn text_answer(status: StatusCode, text: String) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(text)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    answer
}

/// Jangar's error envelope; the message says where it came from, in Jangar's own wording for
/// the statuses it really sends (`jangar.md` §1.2–§1.3).
pub(super) fn error_body(status: u16) -> Value {
    let message = match status {
        500 => "ClickHouse request failed (500): injected by the torghut-e2e fault proxy".into(),
        503 => "CH_HOST is not configured".into(),
        _ => format!("injected by the torghut-e2e fault proxy ({status})"),
    };
    json!({ "ok": false, "message": message, "error": message })
}

pub(super) fn empty_body(shape: EmptyShape, query: &str) -> Value {
    let param = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    // Jangar trims and upper-cases the symbol (normalizeTorghutSymbol).
    let symbol = param("symbol").trim().to_uppercase();
    match shape {
        EmptyShape::Series => {
            let (from, to) = (
                clickhouse_time(&param("from")),
                clickhouse_time(&param("to")),
            );
            let window = json!({ "from": from, "to": to });
            json!({
                "ok": true,
                "symbol": symbol,
                "items": [],
                "range": { "requested": window, "effective": window, "fallback": false },
            })
        }
        EmptyShape::Latest => {
            json!({ "ok": true, "symbol": symbol, "bars": null, "signals": null })
        }
        EmptyShape::Symbols => json!({ "symbols": [] }),
    }
}

/// `2026-03-05T19:59:58.123Z` → `2026-03-05T19:59:58.123` (`formatClickHouseDateTime64`);
/// anything else is echoed.
pub(super) fn clickhouse_time(value: &str) -> String {
    let parsed = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339);
    match parsed {
        Ok(t) => {
            let iso = crate::domain::model::iso_millis(t);
            iso.trim_end_matches('Z').to_string()
        }
        Err(_) => value.to_string(),
    }
}
