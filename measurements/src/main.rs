//! `cocoon-measure`: wires the command line to the library; each subcommand lives in `cli/`.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cocoon-measure: error: {e:#}");
            // Exit code 2: bad input (the error names the file and what is wrong).
            ExitCode::from(2)
        }
    }
}
