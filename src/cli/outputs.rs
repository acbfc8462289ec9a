//! The run's output files, checked before anything is published.
//!
//! A report path that is a directory, or in a directory the run cannot write to, used to be found
//! after the trades were published and the checks had run: the evidence of that run was lost.
//! Every output (`--report-json`, `--junit`, `--html`, `--metrics`, the canary's `--history`,
//! the artifacts directory) is now tried for writing first, and a problem is a usage error
//! (exit 2) naming the flag. The check leaves nothing behind: a probe file is created and
//! removed, an existing file is opened for appending and left unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::BasicAuth;

/// An output that cannot be written, named by its flag.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {path}: {reason}")]
pub struct OutputError {
    pub flag: String,
    pub path: String,
    pub reason: String,
}

/// Where metrics are pushed: the URL without credentials, and the credentials its user info
/// carried.
#[derive(Debug, Clone)]
pub struct Pushgateway {
    pub url: String,
    pub auth: Option<BasicAuth>,
}

/// Where a run's results go besides the console; shared by `run` and `canary`.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    /// The versioned JSON report (`--report-json`).
    pub report_json: Option<PathBuf>,
    /// JUnit XML (`--junit`).
    pub junit: Option<PathBuf>,
    /// The self-contained HTML evidence report (`--html`).
    pub html: Option<PathBuf>,
    /// Prometheus text-format metrics (`--metrics`).
    pub metrics: Option<PathBuf>,
    /// A Pushgateway URL for the same metrics (`--pushgateway`), credentials in its user info.
    pub pushgateway: Option<String>,
}

/// The outputs of a run, checked.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub report_json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub metrics: Option<PathBuf>,
    pub pushgateway: Option<Pushgateway>,
}

impl Outputs {
    /// Checks every output of `args` and the `more` files (flag, path; e.g. the canary's
    /// history), and that `artifacts_dir` can be created and written; all problems at once.
    pub fn check(
        args: &OutputOptions,
        more: &[(&str, &Path)],
        artifacts_dir: &Path,
    ) -> Result<Self, Vec<OutputError>> {
        let files: Vec<(&str, &Path)> = [
            ("--report-json", args.report_json.as_deref()),
            ("--junit", args.junit.as_deref()),
            ("--html", args.html.as_deref()),
            ("--metrics", args.metrics.as_deref()),
        ]
        .into_iter()
        .filter_map(|(flag, path)| path.map(|p| (flag, p)))
        .collect();
        let mut errors: Vec<OutputError> = files
            .iter()
            .filter_map(|(flag, path)| check_file(flag, path, false).err())
            .collect();
        errors.extend(
            more.iter()
                .filter_map(|(flag, path)| check_file(flag, path, true).err()),
        );
        errors.extend(check_dir("artifacts_dir (TORGHUT_E2E_ARTIFACTS_DIR)", artifacts_dir).err());
        errors.extend(same_file_twice(files.iter().chain(more)));
        let pushgateway = match &args.pushgateway {
            Some(url) => match crate::config::url_with_auth("--pushgateway", url) {
                Ok((url, auth)) => {
                    if let Some(a) = &auth {
                        crate::domain::redact::register([a.password.expose()]);
                    }
                    Some(Pushgateway { url, auth })
                }
                Err(e) => {
                    errors.push(OutputError {
                        flag: "--pushgateway".into(),
                        path: crate::domain::redact::url(url),
                        reason: e.to_string(),
                    });
                    None
                }
            },
            None => None,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            report_json: args.report_json.clone(),
            junit: args.junit.clone(),
            html: args.html.clone(),
            metrics: args.metrics.clone(),
            pushgateway,
        })
    }
}

fn error(flag: &str, path: &Path, reason: impl Into<String>) -> OutputError {
    OutputError {
        flag: flag.into(),
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The file can be written: not a directory; its directory exists (or, with
/// `create_parents`, can be created) and takes new files (the metrics file is replaced by a
/// rename); an existing file opens for appending.
pub fn check_file(flag: &str, path: &Path, create_parents: bool) -> Result<(), OutputError> {
    if path.as_os_str().is_empty() {
        return Err(error(flag, path, "an empty path"));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(error(flag, path, "is a directory, not a file")),
        Ok(_) => {
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| error(flag, path, format!("cannot be written: {e}")))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(flag, path, format!("cannot be inspected: {e}"))),
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if create_parents {
        let existing = parent
            .ancestors()
            .find(|a| a.exists())
            .unwrap_or(Path::new("."));
        probe(existing).map_err(|reason| error(flag, path, reason))
    } else if !parent.is_dir() {
        Err(error(
            flag,
            path,
            format!("directory {} does not exist", parent.display()),
        ))
    } else {
        probe(parent).map_err(|reason| error(flag, path, reason))
    }
}

/// The directory exists or can be created, and takes new files.
pub fn check_dir(what: &str, dir: &Path) -> Result<(), OutputError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| error(what, dir, format!("cannot be created: {e}")))?;
    probe(dir).map_err(|reason| error(what, dir, reason))
}

/// Creates and removes a file in `dir`.
fn probe(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let name = format!(".torghut-e2e-write-check-{}", std::process::id());
    let file = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .map_err(|e| format!("directory {} does not take new files: {e}", dir.display()))?;
    std::fs::remove_file(&file)
        .map_err(|e| format!("cannot remove the check file {}: {e}", file.display()))
}

/// Two flags naming one file would overwrite each other's output.
fn same_file_twice<'a>(files: impl Iterator<Item = &'a (&'a str, &'a Path)>) -> Vec<OutputError> {
    let mut seen: BTreeMap<PathBuf, &str> = BTreeMap::new();
    let mut errors = Vec::new();
    for (flag, path) in files {
        // Compared as written, and through the directory's real path when it exists.
        let key = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .and_then(|p| p.canonicalize().ok())
            .and_then(|dir| path.file_name().map(|n| dir.join(n)))
            .unwrap_or_else(|| path.to_path_buf());
        if let Some(first) = seen.insert(key, flag) {
            errors.push(error(flag, path, format!("is also the path of {first}")));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("t2e-outputs-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&d).ok();
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_directory_or_a_missing_directory_is_named_by_its_flag() {
        let d = dir("named");
        let args = OutputOptions {
            report_json: Some(d.clone()),
            junit: Some(d.join("no/such/dir/j.xml")),
            html: Some(d.join("ok.html")),
            metrics: Some(d.join("ok.html")),
            pushgateway: Some("http://u:pw@pg:port".into()),
        };
        let errors = Outputs::check(&args, &[], &d.join("artifacts")).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(text[0].starts_with("--report-json") && text[0].contains("is a directory"));
        assert!(text
            .iter()
            .any(|e| e.starts_with("--junit") && e.contains("does not exist")));
        assert!(text
            .iter()
            .any(|e| e.starts_with("--metrics") && e.contains("also the path of --html")));
        assert!(text.iter().any(|e| e.starts_with("--pushgateway")));
        assert!(!text.iter().any(|e| e.contains("pw@")), "{text:?}");
        // Nothing was left behind by the checks.
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("artifacts")],
            "{left:?}"
        );
        std::fs::remove_dir_all(d).ok();
    }

    #[test]
    fn writable_outputs_pass_and_the_pushgateway_loses_its_credentials() {
        let d = dir("ok");
        std::fs::write(d.join("existing.xml"), "keep").unwrap();
        let args = OutputOptions {
            report_json: Some(d.join("r.json")),
            junit: Some(d.join("existing.xml")),
            html: None,
            metrics: None,
            pushgateway: Some("http://pg-user:pg%20pw@pg:9091".into()),
        };
        let history = d.join("new/dir/history.jsonl");
        let out = Outputs::check(&args, &[("--history", &history)], &d.join("a")).unwrap();
        let pg = out.pushgateway.unwrap();
        assert_eq!(pg.url, "http://pg:9091");
        assert_eq!(pg.auth.unwrap().password.expose(), "pg pw");
        assert_eq!(
            std::fs::read_to_string(d.join("existing.xml")).unwrap(),
            "keep"
        );
        assert!(!d.join("r.json").exists() && !d.join("new").exists());
        std::fs::remove_dir_all(d).ok();
    }

    #[test]
    fn an_unwritable_directory_is_refused() {
        // Root may write anywhere: /proc is a directory no one can create files in.
        let err = check_file("--html", Path::new("/proc/t2e-report.html"), false).unwrap_err();
        assert!(err.to_string().contains("does not take new files"), "{err}");
        let err = check_file("--history", Path::new("/proc/x/y/h.jsonl"), true).unwrap_err();
        assert!(err.to_string().starts_with("--history"), "{err}");
    }

    #[test]
    fn every_writable_output_is_written_and_a_failed_check_keeps_its_code() {
        use crate::cli::run::with_outputs;
        use crate::cli::write::{write_outputs, Written};
        use crate::cli::Outcome;
        let d = dir("write");
        // The first output fails (its path turned into a directory after the check): the
        // others are written all the same, and the failure is listed.
        let outputs = Outputs {
            report_json: Some(d.clone()),
            junit: Some(d.join("j.xml")),
            html: Some(d.join("h.html")),
            metrics: Some(d.join("m.prom")),
            pushgateway: None,
        };
        let report = crate::report::sample::sample();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let written = rt.block_on(write_outputs(&report, &outputs, None, &[]));
        assert_eq!(written.failed, vec!["--report-json".to_string()]);
        for f in ["j.xml", "h.html", "m.prom"] {
            assert!(d.join(f).is_file(), "{f}");
        }
        std::fs::remove_dir_all(&d).ok();
        // A failed check or an unreachable target keeps its code; a pass becomes exit 2.
        assert_eq!(
            with_outputs(Outcome::CheckFailed, &written),
            Outcome::CheckFailed
        );
        assert_eq!(
            with_outputs(Outcome::Unreachable, &written),
            Outcome::Unreachable
        );
        assert_eq!(
            with_outputs(Outcome::Pass, &written),
            Outcome::UsageOrConfig
        );
        assert_eq!(
            with_outputs(Outcome::Pass, &Written::default()),
            Outcome::Pass
        );
    }
}
