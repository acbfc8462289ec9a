//! Keeping credentials out of everything the validator prints or writes.
//!
//! The first line of defence is structural: credentials given inside a URL are moved into the
//! client's authentication when the configuration is loaded (`config`), so the URLs the program
//! keeps and prints carry none. This module is the second: it redacts what a text may still carry
//! without the program knowing (user info and credential-like query parameters of any URL,
//! `password=`-like fields of evidence), and every secret value the configuration holds wherever
//! it appears in a log line or an error message ([`register`], [`scrub_known`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::RwLock;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not searched for in free text: they would blank unrelated
/// words. (The structural defence still keeps them out of URLs and reports.)
const MIN_KNOWN_LEN: usize = 4;

/// Every secret value of the configuration, for the log writer and the error printer: a
/// process-wide concern, like the log subscriber itself.
static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers secret values (passwords, URL credentials) so that [`scrub_known`] removes them.
pub fn register<'a>(secrets: impl IntoIterator<Item = &'a str>) {
    let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    for s in secrets {
        if s.len() >= MIN_KNOWN_LEN && !known.iter().any(|k| k == s) {
            known.push(s.to_string());
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    known.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Replaces every registered secret, and its percent-encoded and JSON-escaped forms.
pub fn scrub_known(text: &str) -> Cow<'_, str> {
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in known.iter() {
        for form in forms(secret) {
            if out.contains(form.as_ref()) {
                out = Cow::Owned(out.replace(form.as_ref(), REDACTED));
            }
        }
    }
    out
}

/// The spellings a secret may take in output: as is, percent-encoded (in a URL), JSON-escaped.
fn forms(secret: &str) -> Vec<Cow<'_, str>> {
    let mut forms = vec![Cow::Borrowed(secret)];
    let encoded: Cow<'_, str> =
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).into();
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    for f in [encoded, Cow::Owned(json)] {
        if f != secret && !forms.contains(&f) {
            forms.push(f);
        }
    }
    forms
}

/// A line for the log or the console: registered secrets and URL credentials removed.
pub fn line(text: &str) -> Cow<'_, str> {
    match scrub_known(text) {
        Cow::Borrowed(t) => scrub_url(t),
        Cow::Owned(t) => Cow::Owned(scrub_url(&t).into_owned()),
    }
}

/// Query parameters whose value is a credential (matched case-insensitively, as a substring of
/// the parameter name: `password`, `api_key`, `X-Amz-Signature`, `access_token` ...).
const SENSITIVE_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "credential",
    "signature",
    "session",
];

fn sensitive_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE_PARAMS.iter().any(|p| lower.contains(p))
}

/// A URL as it may be shown: the password of its user info and the values of credential-like
/// query parameters redacted (`http://u:[redacted]@h/?token=[redacted]`). Text that is not a URL
/// is scrubbed as free text.
pub fn url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) if u.has_host() => shown_url(raw, &u),
        _ => scrub_url(raw).into_owned(),
    }
}

fn shown_url(raw: &str, u: &url::Url) -> String {
    let has_secret_query = u.query_pairs().any(|(k, _)| sensitive_param(&k));
    if u.password().is_none() && !has_secret_query {
        // Unchanged, and in the writer's own spelling (no normalisation such as a trailing `/`).
        return raw.to_string();
    }
    let mut shown = u.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some(REDACTED));
    }
    if has_secret_query {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if sensitive_param(&k) {
                    REDACTED.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // The brackets of the marker are percent-encoded by the URL writer; show them plainly.
    shown
        .as_str()
        .replace("%5Bredacted%5D", REDACTED)
        .replace("%5bredacted%5d", REDACTED)
}

/// Every `scheme://…` in a text with its user info's password and credential-like query values
/// redacted; the rest of the text unchanged.
pub fn scrub_url(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme: the letters, digits and `+-.` right before `://`.
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + 1);
        out.push_str(&rest[..scheme_start]);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(after.len());
        let candidate = &rest[scheme_start..i + 3 + end];
        out.push_str(&scrub_one(candidate));
        rest = &after[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// One URL-looking token: parsed when possible, else its user info cut by hand.
fn scrub_one(token: &str) -> String {
    // Trailing `)`, `,`, `:` ... are punctuation of the sentence, not part of the URL.
    let trimmed = token.trim_end_matches([')', ',', '.', ';', ':', ']']);
    let tail = &token[trimmed.len()..];
    let scheme_end = trimmed.find("://").map_or(0, |i| i + 3);
    if trimmed.len() > scheme_end {
        if let Ok(u) = url::Url::parse(trimmed) {
            if u.has_host() {
                return shown_url(trimmed, &u) + tail;
            }
        }
    }
    // Not parsable (a bad port, say): redact whatever sits between the scheme and an `@`.
    let (scheme, after) = trimmed.split_at(scheme_end);
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let mut out = String::from(scheme);
    match after[..authority_end].rfind('@') {
        Some(at) => {
            let info = &after[..at];
            let user = info.split(':').next().unwrap_or_default();
            if info.contains(':') {
                let _ = write!(out, "{user}:{REDACTED}");
            } else {
                out.push_str(REDACTED);
            }
            out.push_str(&after[at..]);
        }
        None => out.push_str(after),
    }
    out + tail
}

/// Redacts credentials a text may carry without the validator knowing them: URL user info and
/// query credentials, and the values of password-, token- and secret-like fields.
pub fn scrub_text(text: &str) -> String {
    let text = scrub_url(text);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        out.push_str(&scrub_fields(line));
    }
    out
}

/// `"password": "x"`, `password=x`, `Authorization: Bearer x` and the like, on one line.
fn scrub_fields(line: &str) -> String {
    const KEYS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "authorization",
        "api_key",
    ];
    let lower = line.to_ascii_lowercase();
    let Some(key_at) = KEYS
        .iter()
        .filter_map(|k| lower.find(k).map(|i| i + k.len()))
        .min()
    else {
        return line.to_string();
    };
    // Skip the rest of the key name, quotes and the separator; redact the value after it.
    let bytes = line.as_bytes();
    let mut i = key_at;
    while i < bytes.len()
        && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'-')
    {
        i += 1;
    }
    let sep_start = i;
    while i < bytes.len() && matches!(bytes[i], b'"' | b'\'' | b' ' | b':' | b'=' | b'\t') {
        i += 1;
    }
    if i == sep_start || !line[sep_start..i].contains([':', '=']) || i >= bytes.len() {
        return line.to_string();
    }
    let value_end = line[i..]
        .find(['"', '\'', ',', '}', '&', '\n', '\r'])
        .map_or(line.len(), |j| i + j);
    if value_end == i {
        return line.to_string();
    }
    format!(
        "{}{REDACTED}{}",
        &line[..i],
        scrub_fields(&line[value_end..])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_and_credential_parameters() {
        assert_eq!(
            url("http://u:s3cret@h:8123/x?token=abc&db=a"),
            "http://u:[redacted]@h:8123/x?token=[redacted]&db=a"
        );
        assert_eq!(url("http://h:8123"), "http://h:8123");
        assert_eq!(
            url("https://h/?api_key=k&X-Amz-Signature=s"),
            "https://h/?api_key=[redacted]&X-Amz-Signature=[redacted]"
        );
        // Not parsable (port out of range): the user info is still cut.
        assert_eq!(url("http://u:pw@h:99999"), "http://u:[redacted]@h:99999");
    }

    #[test]
    fn urls_in_text_are_scrubbed_in_place() {
        assert_eq!(
            scrub_url("error sending request for url (http://u:pw@h:1/a?password=x): refused"),
            "error sending request for url (http://u:[redacted]@h:1/a?password=[redacted]): refused"
        );
        assert_eq!(
            scrub_url("kafka://u:p@host:9092/x and ftp://plain/"),
            "kafka://u:[redacted]@host:9092/x and ftp://plain/"
        );
        assert_eq!(scrub_url("no url here"), "no url here");
        assert_eq!(
            scrub_url("pooling idle connection for (\"http\", user:pw@h:1)"),
            "pooling idle connection for (\"http\", user:pw@h:1)",
            "free text without a scheme is left to scrub_known"
        );
    }

    #[test]
    fn known_secrets_are_replaced_in_every_spelling() {
        register(["k3y-w1th/sl@sh", "x"]);
        assert_eq!(
            scrub_known("a k3y-w1th/sl@sh b k3y%2Dw1th%2Fsl%40sh c x"),
            "a [redacted] b [redacted] c x",
            "short values are not searched for"
        );
        register(["quo\"te-pw"]);
        assert_eq!(
            scrub_known(r#"{"p":"quo\"te-pw"}"#),
            r#"{"p":"[redacted]"}"#
        );
    }

    #[test]
    fn credential_fields_are_redacted() {
        assert_eq!(
            scrub_text("{\"user\":\"a\",\"password\":\"hunter22\",\"x\":1}"),
            "{\"user\":\"a\",\"password\":\"[redacted]\",\"x\":1}"
        );
        assert_eq!(scrub_text("password=abc&x=1"), "password=[redacted]&x=1");
        assert_eq!(
            scrub_text("Authorization: Bearer abc.def"),
            "Authorization: [redacted]"
        );
        assert_eq!(
            scrub_text("password_env names a variable"),
            "password_env names a variable"
        );
    }
}
