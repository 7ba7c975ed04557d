//! Thin commands: parse, call one function, print. [`execute`] runs any command line
//! against any [`Transport`], which is how the tests drive every command on the harness.

pub mod backup;
pub mod canister;
pub mod factory;
pub mod restore;
pub mod snapshot;
pub mod vault;

use std::io::Write;

use crate::cli::{BackupCommand, Cli, Command, FactoryCommand, SnapshotCommand, VaultCommand};
use crate::error::{CliError, CliResult};
use crate::progress::ProgressMode;
use crate::transport::Transport;

/// Opens the connection a network command needs (called at most once, and never for
/// offline commands).
pub type Connect<'a> = &'a dyn Fn(&Cli) -> CliResult<Box<dyn Transport>>;

/// Runs `cli`, writing its human output to `out`.
///
/// # Errors
/// The command's error.
pub fn execute(cli: &Cli, connect: Connect<'_>, out: &mut dyn Write) -> CliResult<()> {
    let progress = if cli.quiet {
        ProgressMode::Hidden
    } else {
        ProgressMode::Bars
    };
    let text = match &cli.command {
        Command::Demo(args) => return run_demo(args, progress, out),
        Command::Snapshot(SnapshotCommand::Verify { file }) => snapshot::verify(file, progress)?,
        Command::Snapshot(SnapshotCommand::Export { file, dir, layout }) => {
            snapshot::export(file, dir, *layout, progress)?
        }
        Command::Snapshot(SnapshotCommand::Import {
            dir,
            output,
            source,
            layout,
            chunk_size,
        }) => snapshot::import(dir, output, *source, *layout, *chunk_size)?,
        command => {
            let t = connect(cli)?;
            let t = t.as_ref();
            match command {
                Command::Vault(VaultCommand::Create(args)) => vault::create(t, args)?,
                Command::Vault(VaultCommand::Status(v)) => vault::status(t, v.vault)?,
                Command::Factory(FactoryCommand::UploadVersion {
                    factory,
                    wasm,
                    label,
                    keep_current,
                }) => factory::upload(t, factory.factory, wasm, label, !*keep_current, progress)?,
                Command::Factory(FactoryCommand::Status(f)) => factory::status(t, f.factory)?,
                Command::Snapshot(SnapshotCommand::List { vault, source }) => {
                    snapshot::list(t, vault.vault, *source)?
                }
                Command::Snapshot(SnapshotCommand::Download { id, vault, output }) => {
                    snapshot::download(t, vault.vault, *id, output, progress)?
                }
                Command::Snapshot(SnapshotCommand::Upload {
                    file,
                    vault,
                    source,
                    label,
                }) => snapshot::upload(t, vault.vault, file, *source, label.clone(), progress)?,
                Command::Backup(BackupCommand::Now {
                    app,
                    no_wait,
                    timeout,
                }) => backup::now(t, app.app, !*no_wait, *timeout, progress)?,
                Command::Backup(BackupCommand::Status(app)) => backup::status(t, app.app)?,
                Command::Backup(BackupCommand::Canister(args)) => {
                    canister::backup(t, args, progress)?
                }
                Command::Protect(args) => canister::protect(t, args)?,
                Command::Fork(args) => canister::fork(t, args, progress)?,
                Command::Restore(args) => restore::run(t, args, progress)?,
                Command::Demo(_)
                | Command::Snapshot(
                    SnapshotCommand::Verify { .. }
                    | SnapshotCommand::Export { .. }
                    | SnapshotCommand::Import { .. },
                ) => unreachable!("handled above"),
            }
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::Usage(format!("cannot write the output: {e}")))
}

#[cfg(feature = "harness")]
fn run_demo(
    args: &crate::cli::DemoArgs,
    progress: ProgressMode,
    out: &mut dyn Write,
) -> CliResult<()> {
    crate::demo::run(args, progress, out)
}

#[cfg(not(feature = "harness"))]
fn run_demo(_: &crate::cli::DemoArgs, _: ProgressMode, _: &mut dyn Write) -> CliResult<()> {
    Err(CliError::Usage(
        "this canvault was built without the `harness` feature, which the demo needs".into(),
    ))
}

/// `1.5 GiB`, `640 KiB`, `12 B`.
#[must_use]
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `2026-11-21 08:30:15 UTC` from nanoseconds since the epoch.
#[must_use]
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Cycles in the `1.23T` style.
#[must_use]
pub fn human_cycles(c: u128) -> String {
    let (value, unit) = match c {
        c if c >= 1_000_000_000_000 => (c as f64 / 1e12, "T"),
        c if c >= 1_000_000_000 => (c as f64 / 1e9, "B"),
        c if c >= 1_000_000 => (c as f64 / 1e6, "M"),
        c => return c.to_string(),
    };
    format!("{value:.3}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_bytes_times_and_cycles() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(human_cycles(1_500_000_000_000), "1.500T");
        assert_eq!(human_cycles(42), "42");
    }
}
