//! Checks of single values: ranges, names, bootstrap lists, URLs (and the credentials a URL
//! carries), booleans; each failure names the key or variable.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use url::Url;

use super::{BasicAuth, ConfigError, Secret, SecurityProtocol};

pub(super) fn in_range<T>(
    name: &str,
    value: T,
    range: RangeInclusive<T>,
    unit: &str,
) -> Result<T, ConfigError>
where
    T: PartialOrd + fmt::Display + Copy,
{
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            name,
            &value.to_string(),
            format!(
                "must be between {} and {} ({unit})",
                range.start(),
                range.end()
            ),
        ))
    }
}

pub(super) fn non_empty(name: &str, value: &str) -> Result<String, ConfigError> {
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err(invalid(
            name,
            value,
            "a non-empty value without control characters",
        ));
    }
    Ok(value.to_string())
}

pub(super) fn path_value(name: &str, value: &str) -> Result<PathBuf, ConfigError> {
    non_empty(name, value).map(PathBuf::from)
}

/// A Kafka topic or group name as the broker accepts it.
pub(super) fn kafka_name(name: &str, value: &str) -> Result<String, ConfigError> {
    let legal = !value.is_empty()
        && value.len() <= 249
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !legal {
        return Err(invalid(
            name,
            value,
            "1-249 characters of A-Z a-z 0-9 . _ -",
        ));
    }
    Ok(value.to_string())
}

/// `host:port[,host:port…]`, each with an optional `PROTOCOL://` prefix as librdkafka allows;
/// a port, when given, is a number from 1 to 65535.
pub(super) fn bootstrap(name: &str, value: &str) -> Result<String, ConfigError> {
    let expected = "host:port[,host:port…] with ports from 1 to 65535";
    if value.contains('@') {
        return Err(invalid(
            name,
            value,
            "no credentials: kafka.username and password_file (or TORGHUT_E2E_KAFKA_PASSWORD) \
             carry them",
        ));
    }
    let servers: Vec<&str> = value.split(',').map(str::trim).collect();
    if servers.iter().all(|s| s.is_empty()) {
        return Err(invalid(name, value, expected));
    }
    for server in servers {
        let address = match server.split_once("://") {
            Some((protocol, rest)) => {
                SecurityProtocol::parse(name, protocol).map_err(|_| {
                    invalid(
                        name,
                        value,
                        "a protocol prefix of PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                    )
                })?;
                rest
            }
            None => server,
        };
        let (host, port) = match address.strip_prefix('[') {
            // An IPv6 literal: `[::1]:9092`.
            Some(v6) => match v6.split_once(']') {
                Some((host, rest)) => (host, rest.strip_prefix(':')),
                None => return Err(invalid(name, value, expected)),
            },
            None => match address.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            },
        };
        let host_ok = !host.is_empty()
            && !host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#'));
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
        if !host_ok || !port_ok {
            return Err(invalid(name, value, expected));
        }
    }
    Ok(value.to_string())
}

/// Every server of a bootstrap list (already checked by [`bootstrap`]) is on this machine:
/// `localhost` or a loopback address.
pub(super) fn bootstrap_is_loopback(value: &str) -> bool {
    value.split(',').map(str::trim).all(|server| {
        let address = server.split_once("://").map_or(server, |(_, rest)| rest);
        let host = match address.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or(v6, |(host, _)| host),
            None => address.rsplit_once(':').map_or(address, |(host, _)| host),
        };
        host_is_loopback(host)
    })
}

/// A URL (already checked by [`http_url`]) whose host is this machine.
pub(super) fn url_is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(host)) => host_is_loopback(host),
        None => false,
    }
}

fn host_is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An `http://` or `https://` URL with a host and a valid port.
pub(super) fn http_url(name: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim())
        .map_err(|e| invalid(name, value, format!("an http:// or https:// URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(name, value, "an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(name, value, "a URL with a host"));
    }
    if url.port() == Some(0) {
        return Err(invalid(name, value, "a port from 1 to 65535"));
    }
    Ok(url)
}

/// The WebDriver client cannot authenticate: credentials in its URL are refused rather than
/// sent nowhere and logged.
pub(super) fn webdriver_url(name: &str, value: &str) -> Result<String, ConfigError> {
    let url = http_url(name, value)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            name,
            value,
            "a URL without user info (the WebDriver client does not authenticate)",
        ));
    }
    Ok(url_text(&url))
}

/// Credentials found in a URL, percent-decoded.
#[derive(Default)]
pub(super) struct UrlCredentials {
    pub(super) user: Option<String>,
    pub(super) password: Option<Secret>,
}

/// Takes the user info (and the query parameters `params` names, e.g. ClickHouse's `user` and
/// `password`) out of `url`.
pub(super) fn take_credentials(
    name: &str,
    url: &mut Url,
    params: Option<(&str, &str)>,
) -> Result<UrlCredentials, ConfigError> {
    let shown = url.as_str().to_string();
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| invalid(name, &shown, "user info that decodes to UTF-8"))
    };
    let mut found = UrlCredentials::default();
    if !url.username().is_empty() {
        found.user = Some(decode(url.username())?);
    }
    if let Some(p) = url.password() {
        found.password = Some(Secret::new(decode(p)?));
    }
    // Only fails for URLs that cannot have user info, which had none to take.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let Some((user_param, password_param)) = params else {
        return Ok(found);
    };
    if url
        .query_pairs()
        .any(|(k, _)| k == user_param || k == password_param)
    {
        let mut kept = Vec::new();
        for (k, v) in url.query_pairs() {
            if k == user_param {
                found.user = Some(v.into_owned());
            } else if k == password_param {
                found.password = Some(Secret::new(v.into_owned()));
            } else {
                kept.push((k.into_owned(), v.into_owned()));
            }
        }
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    Ok(found)
}

/// The URL as the program keeps it: without the `/` the URL writer appends to a bare host.
pub(super) fn url_text(url: &Url) -> String {
    let text = url.as_str();
    if url.path() == "/" && url.query().is_none() && url.fragment().is_none() {
        text.trim_end_matches('/').to_string()
    } else {
        text.to_string()
    }
}

/// An `http(s)://` URL whose user info becomes basic authentication: the URL without it (as
/// the program keeps and prints it) and the credentials (Jangar, the Pushgateway).
pub fn url_with_auth(name: &str, value: &str) -> Result<(String, Option<BasicAuth>), ConfigError> {
    let mut url = http_url(name, value)?;
    let found = take_credentials(name, &mut url, None)?;
    let auth = match (found.user, found.password) {
        (None, None) => None,
        (user, password) => Some(BasicAuth {
            user: user.unwrap_or_default(),
            password: password.unwrap_or_default(),
        }),
    };
    Ok((url_text(&url), auth))
}

pub(super) fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(invalid(name, value, "true or false")),
    }
}

/// An invalid value; the value is shown with any URL credentials redacted.
pub(super) fn invalid(name: &str, value: &str, expected: impl Into<String>) -> ConfigError {
    let shown = if value.contains("://") {
        crate::domain::redact::url(value)
    } else if let Some((_, host)) = value.rsplit_once('@') {
        // `user:password@host:port` in a bootstrap list.
        format!("{}@{host}", crate::domain::redact::REDACTED)
    } else {
        value.to_string()
    };
    ConfigError::Invalid {
        name: name.into(),
        value: shown,
        expected: expected.into(),
    }
}
