//! Progress during long waits: a spinner per scenario (and between canary cycles) when stderr
//! is a terminal; plain log lines otherwise (the spinners are then never drawn).
//!
//! Log lines go through `LogWriter`, which hides the spinners while a line is written, so the
//! two never garble each other on a terminal.

use std::io::{IsTerminal, Write};
use std::sync::LazyLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static BARS: LazyLock<MultiProgress> = LazyLock::new(|| {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    MultiProgress::with_draw_target(target)
});

/// A ticking spinner with a message and the elapsed time; hidden when not on a terminal.
pub fn spinner(message: String) -> ProgressBar {
    let bar = BARS.add(ProgressBar::new_spinner());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Runs `write` with the spinners hidden, so a line written to stderr does not garble them.
pub fn suspend<R>(write: impl FnOnce() -> R) -> R {
    BARS.suspend(write)
}

/// A `tracing` writer to stderr that suspends the spinners while a log line is written.
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line(Vec::with_capacity(256))
    }
}

/// One log event, buffered and written whole when dropped (tracing writes an event, then drops).
/// The whole line passes the redactor: libraries log URLs and errors the validator never sees
/// (HTTP client pool lines, librdkafka), and a secret must not reach the log through them.
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        let text = String::from_utf8_lossy(&bytes);
        let line = crate::domain::redact::line(&text);
        BARS.suspend(|| {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        });
    }
}
