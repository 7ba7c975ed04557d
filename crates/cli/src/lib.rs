//! canvault's command line: a self-contained demo on the in-process IC, and real-network
//! commands through ic-agent.
//!
//! Every command talks to canisters through [`transport::Transport`], a three-method
//! seam (query, update, pause) implemented with ic-agent for real networks and with
//! `ic-harness` for the demo and the tests; [`commands::execute`] runs any command line
//! against either.

pub mod cli;
pub mod client;
pub mod commands;
#[cfg(feature = "harness")]
pub mod demo;
pub mod download;
pub mod error;
pub mod file_format;
pub mod native;
pub mod native_canister;
pub mod progress;
pub mod transport;
pub mod upload;
pub mod verify;

pub use cli::Cli;
pub use error::{CliError, CliResult};
