//! The `canvault` binary.

use std::process::ExitCode;

use canvault_cli::Cli;
use canvault_cli::commands::execute;
use canvault_cli::error::CliResult;
use canvault_cli::transport::{AgentTransport, Transport};
use clap::Parser;

fn connect(cli: &Cli) -> CliResult<Box<dyn Transport>> {
    Ok(Box::new(AgentTransport::connect(
        &cli.network,
        cli.identity.as_deref(),
    )?))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match execute(&cli, &connect, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
