//! Console lines that never panic.
//!
//! `println!` and `eprintln!` panic when their stream is closed (`torghut-e2e preflight | head -1`
//! ended with "failed printing to stdout: Broken pipe", exit 101). A reader that stops reading
//! ends the output, not the program: the verb still finishes (a run still writes its report
//! files) and exits with its own outcome. Lines pass through the redactor (see `redact`);
//! those on stderr are written between spinner frames.

use std::fmt;
use std::io::{self, Write};

/// One line on stdout, redacted like stderr's; a write error (a closed pipe) is ignored.
pub fn out(args: fmt::Arguments<'_>) {
    let text = args.to_string();
    let _ = writeln!(
        io::stdout().lock(),
        "{}",
        crate::domain::redact::line(&text)
    );
}

/// One line on stderr, with known secrets and URL credentials redacted; errors ignored.
pub fn err(args: fmt::Arguments<'_>) {
    let text = args.to_string();
    let line = crate::domain::redact::line(&text);
    crate::cli::progress::suspend(|| {
        let _ = writeln!(io::stderr().lock(), "{line}");
    });
}

/// True when the error only says the reader went away (`| head`): not a failure of the verb.
pub fn is_closed_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}
