//! `torghut-e2e oracle --input <messages.jsonl> [--flush-open] [--strict]
//! [--quote-stale-after-ms MS]`.
//!
//! Input: one Kafka message value per line, exactly as the forwarder writes it (trade, quote or
//! 1-minute bar envelope; a bar's row is a `PT1M` signal), in publish order. Blank lines are
//! ignored. Bytes that are not UTF-8 are replaced (U+FFFD), as the job's `SimpleStringSchema`
//! decodes them.
//!
//! Output (stdout, a stable contract): one JSON object per expected row in emission order,
//! `"table"` first (`"ta_microbars"` or `"ta_signals"`), then every column under its ClickHouse
//! name in table order. Timestamps are UTC ISO-8601 with milliseconds (`2026-07-21T14:30:01.000Z`),
//! NULL is `null`, `seq`/`count`/sizes are JSON integers, and `ingest_ts` is always `null` (the
//! job's wall clock cannot be predicted).
//!
//! Malformed lines: by default, like production (which drops records it cannot decode and keeps
//! going), each is skipped with a warning on stderr naming the line, and a count is printed at the
//! end; the exit code stays 0. With `--strict` the first malformed line is an error (exit 2) and
//! nothing is printed on stdout. An unreadable input file is exit 2 with its path. A line longer
//! than [`MAX_LINE_BYTES`] is malformed; it is skipped without being held in memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::Outcome;
use crate::config::TaSettings;
use crate::domain::model::{iso_millis, Microbar, Signal};
use crate::domain::oracle::{Expected, Oracle};

pub fn run(args: &OracleOptions) -> Outcome {
    let file = match File::open(&args.input) {
        Ok(f) => f,
        Err(e) => {
            errln!("oracle: cannot read {}: {e}", args.input.display());
            return Outcome::UsageOrConfig;
        }
    };
    let stdout = io::stdout();
    let result = if args.replay.strict {
        // Buffer everything: a malformed line must leave stdout empty.
        let mut buffer = Vec::new();
        process(BufReader::new(file), &args.input, args.replay, &mut buffer).and_then(|summary| {
            stdout
                .lock()
                .write_all(&buffer)
                .map_err(Failure::Output)
                .map(|()| summary)
        })
    } else {
        let mut out = io::BufWriter::new(stdout.lock());
        process(BufReader::new(file), &args.input, args.replay, &mut out)
            .and_then(|summary| out.flush().map_err(Failure::Output).map(|()| summary))
    };
    match result {
        Ok(summary) => {
            if summary.skipped > 0 {
                errln!(
                    "oracle: skipped {} malformed line(s) of {} (the TA job drops such records)",
                    summary.skipped,
                    summary.lines
                );
            }
            Outcome::Pass
        }
        Err(failure) => {
            errln!("oracle: {failure}");
            Outcome::UsageOrConfig
        }
    }
}

/// What `oracle` reads and how.
#[derive(Debug, Clone)]
pub struct OracleOptions {
    /// JSON lines, one Kafka message value per line, in publish order.
    pub input: std::path::PathBuf,
    pub replay: Replay,
}

/// How the messages are replayed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replay {
    /// Also emit the buckets still open at the end, as if the watermark had passed them.
    pub flush_open: bool,
    /// Fail on the first malformed line instead of skipping it.
    pub strict: bool,
    /// The deployed job's settings (its quote-freshness window).
    pub ta: TaSettings,
}

/// Longest line taken as a message: a forwarder message is well under a kilobyte, and memory
/// stays bounded whatever the input.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Reads one line into `raw` (cleared first), at most [`MAX_LINE_BYTES`] of it: the bytes
/// consumed (0 at the end) and whether the line was cut (its rest consumed, not kept).
fn read_line(input: &mut impl BufRead, raw: &mut Vec<u8>) -> io::Result<(usize, bool)> {
    raw.clear();
    let limit = MAX_LINE_BYTES as u64 + 1;
    let mut read = Read::take(&mut *input, limit).read_until(b'\n', raw)?;
    if raw.len() <= MAX_LINE_BYTES || raw.ends_with(b"\n") {
        return Ok((read, false));
    }
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                read += i + 1;
                break;
            }
            None => {
                let n = buf.len();
                input.consume(n);
                read += n;
            }
        }
    }
    raw.clear();
    Ok((read, true))
}

/// Lines read and lines skipped as malformed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: usize,
    pub skipped: usize,
}

/// Why the command stopped.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("cannot read {path}: {source}")]
    Input {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: String,
        line: usize,
        message: String,
    },
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
}

/// Runs the oracle over `input`, writing rows to `out`; the testable core of the command.
/// Warnings about skipped lines go to stderr.
pub fn process(
    input: impl BufRead,
    path: &Path,
    replay: Replay,
    out: &mut impl Write,
) -> Result<Summary, Failure> {
    process_with(input, path, replay, out, &mut |w| errln!("{w}"))
}

/// [`process`], with each warning about a skipped line handed to `warn`.
pub fn process_with(
    mut input: impl BufRead,
    path: &Path,
    replay: Replay,
    out: &mut impl Write,
    warn: &mut dyn FnMut(String),
) -> Result<Summary, Failure> {
    let mut oracle = Oracle::with_config(replay.ta.signal_config());
    let mut summary = Summary::default();
    let mut raw = Vec::new();
    loop {
        let (read, too_long) =
            read_line(&mut input, &mut raw).map_err(|source| Failure::Input {
                path: path.display().to_string(),
                source,
            })?;
        if read == 0 {
            break;
        }
        summary.lines += 1;
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() && !too_long {
            continue;
        }
        let decoded = if too_long {
            Err(format!("line longer than {MAX_LINE_BYTES} bytes"))
        } else {
            oracle.on_message(line).map_err(|e| e.to_string())
        };
        match decoded {
            Ok(rows) => write_rows(out, &rows)?,
            Err(e) if replay.strict => {
                return Err(Failure::Malformed {
                    path: path.display().to_string(),
                    line: summary.lines,
                    message: e,
                })
            }
            Err(e) => {
                summary.skipped += 1;
                warn(format!(
                    "oracle: warning: {}:{}: skipped: {e}",
                    path.display(),
                    summary.lines
                ));
            }
        }
    }
    if replay.flush_open {
        write_rows(out, &oracle.flush_open())?;
    }
    Ok(summary)
}

fn write_rows(out: &mut impl Write, rows: &[Expected]) -> Result<(), Failure> {
    for row in rows {
        let line = row_json(row);
        out.write_all(line.as_bytes()).map_err(Failure::Output)?;
        out.write_all(b"\n").map_err(Failure::Output)?;
    }
    Ok(())
}

/// One row as one line of JSON (the output contract above).
pub fn row_json(row: &Expected) -> String {
    // Cannot fail: string keys only, no fallible values.
    serde_json::to_string(&RowJson(row)).unwrap_or_default()
}

struct RowJson<'a>(&'a Expected);

/// A row timestamp as the output prints it.
fn ts(t: OffsetDateTime) -> String {
    iso_millis(t)
}

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("table", self.0.table())?;
        match self.0 {
            Expected::Microbar(b) => microbar_entries(&mut map, b)?,
            Expected::Signal(g) => signal_entries(&mut map, g)?,
        }
        map.end()
    }
}

/// The columns every row shares, `symbol` … `version`.
macro_rules! header_entries {
    ($map:expr, $r:expr) => {{
        $map.serialize_entry("symbol", &$r.symbol)?;
        $map.serialize_entry("event_ts", &ts($r.event_ts))?;
        $map.serialize_entry("seq", &$r.seq)?;
        $map.serialize_entry("ingest_ts", &None::<String>)?;
        $map.serialize_entry("is_final", &$r.is_final)?;
        $map.serialize_entry("source", &$r.source)?;
        $map.serialize_entry("window_size", &$r.window_size)?;
        $map.serialize_entry("window_step", &$r.window_step)?;
        $map.serialize_entry("window_start", &$r.window_start.map(ts))?;
        $map.serialize_entry("window_end", &$r.window_end.map(ts))?;
        $map.serialize_entry("version", &$r.version)?;
    }};
}

fn microbar_entries<M: SerializeMap>(map: &mut M, b: &Microbar) -> Result<(), M::Error> {
    header_entries!(map, b);
    map.serialize_entry("o", &b.o)?;
    map.serialize_entry("h", &b.h)?;
    map.serialize_entry("l", &b.l)?;
    map.serialize_entry("c", &b.c)?;
    map.serialize_entry("v", &b.v)?;
    map.serialize_entry("vwap", &b.vwap)?;
    map.serialize_entry("count", &b.count)
}

fn signal_entries<M: SerializeMap>(map: &mut M, g: &Signal) -> Result<(), M::Error> {
    header_entries!(map, g);
    let floats = [
        ("macd", g.macd),
        ("macd_signal", g.macd_signal),
        ("macd_hist", g.macd_hist),
        ("ema12", g.ema12),
        ("ema26", g.ema26),
        ("rsi14", g.rsi14),
        ("boll_mid", g.boll_mid),
        ("boll_upper", g.boll_upper),
        ("boll_lower", g.boll_lower),
        ("vwap_session", g.vwap_session),
        ("vwap_w5m", g.vwap_w5m),
        ("imbalance_spread", g.imbalance_spread),
        ("imbalance_bid_px", g.imbalance_bid_px),
        ("imbalance_ask_px", g.imbalance_ask_px),
    ];
    for (name, value) in floats {
        map.serialize_entry(name, &value)?;
    }
    map.serialize_entry("imbalance_bid_sz", &g.imbalance_bid_sz)?;
    map.serialize_entry("imbalance_ask_sz", &g.imbalance_ask_sz)?;
    map.serialize_entry("vol_realized_w60s", &g.vol_realized_w60s)?;
    map.serialize_entry("microstructure_signal_v1", &g.microstructure_signal_v1)
}

#[cfg(test)]
mod tests;
