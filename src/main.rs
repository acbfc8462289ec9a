//! The `torghut-e2e` command line: parses arguments, runs one verb, maps the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use torghut_e2e::cli::{self, args::Cli};

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::init_logging(args.verbose);
    cli::run(args)
}
