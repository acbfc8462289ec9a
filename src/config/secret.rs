//! Secrets: values that are never printed, HTTP basic authentication, and secret files.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

use super::check::{invalid, path_value};
use super::{ConfigError, Env, MAX_SECRET_BYTES};

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The one way to read the value; grep for it to audit where secrets go.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<empty>"
        } else {
            "<redacted>"
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// HTTP basic authentication, from the user info of a configured URL.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub password: Secret,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BasicAuth({:?}, {:?})", self.user, self.password)
    }
}

impl BasicAuth {
    /// The `Authorization` header, marked sensitive so HTTP clients never log its value.
    pub fn header(&self) -> reqwest::header::HeaderValue {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.user,
            self.password.expose()
        ));
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Basic {token}"))
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    /// Default headers for an HTTP client of a target that may need this authentication.
    pub fn headers(auth: Option<&BasicAuth>) -> reqwest::header::HeaderMap {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(auth) = auth {
            headers.insert(reqwest::header::AUTHORIZATION, auth.header());
        }
        headers
    }
}

/// Where a secret may come from, in this order: the standard variable, the standard `*_FILE`
/// variable, the variable the file names, the file the config names.
pub(super) struct SecretSources<'a> {
    pub(super) var: &'a str,
    pub(super) file_var: &'a str,
    pub(super) named_var: Option<&'a str>,
    pub(super) named_file: Option<&'a Path>,
}

/// The secret from the first source that has one; empty when none does. A file named but
/// overridden is checked as a value (a path), not opened: the file may exist only where the
/// config is deployed (a mounted secret), while an override is used elsewhere.
pub(super) fn secret(
    name: &'static str,
    env: &dyn Env,
    sources: SecretSources<'_>,
) -> Result<Secret, ConfigError> {
    if let Some(path) = sources.named_file {
        path_value(&format!("{name} file"), &path.display().to_string())?;
    }
    if let Some(v) = env.get(sources.var) {
        return Ok(Secret::new(v));
    }
    if let Some(path) = env.get(sources.file_var) {
        return read_secret(name, Path::new(&path));
    }
    if let Some(v) = sources.named_var.and_then(|n| env.get(n)) {
        return Ok(Secret::new(v));
    }
    match sources.named_file {
        Some(path) => read_secret(name, path),
        None => Ok(Secret::default()),
    }
}

/// A file that exists, is a regular file and opens for reading (nothing is read).
pub(super) fn readable_file(name: &str, path: &Path) -> Result<(), ConfigError> {
    let opened = std::fs::File::open(path).and_then(|f| f.metadata());
    match opened {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(invalid(
            name,
            &path.display().to_string(),
            "a readable file (this is not a regular file)",
        )),
        Err(e) => Err(invalid(
            name,
            &path.display().to_string(),
            format!("a readable file ({e})"),
        )),
    }
}

pub(super) fn read_secret(name: &'static str, path: &Path) -> Result<Secret, ConfigError> {
    let text = read_bounded(path, MAX_SECRET_BYTES).map_err(|source| ConfigError::SecretFile {
        name,
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// The file's text, refused when larger than `limit` bytes (memory stays bounded).
pub(super) fn read_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}
