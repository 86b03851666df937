//! The `lipost` binary: parses the command line, sets up logging, runs the command.

use std::io::IsTerminal;

use clap::Parser;
use lipost::cli::{self, Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if format == LogFormat::Text && lipost::service::under_journald() {
        // Started by systemd: structured fields (POST_ID, ACCOUNT, STATE, HTTP_STATUS).
        if let Ok(layer) = tracing_journald::layer() {
            use tracing_subscriber::prelude::*;
            let layer = layer
                .with_field_prefix(None)
                .with_syslog_identifier("lipost".into());
            tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .init();
            return;
        }
    }
    // A log line that cannot be written (a full disk under `2> file`, a closed pipe) is
    // lost, not fatal: the fallback that reports it would print to the same stderr, and that
    // print panics, which ends the daemon or, worse, only the task that logged.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Lets a command that prints end quietly when its reader goes away (`lipost list | head`),
/// as Unix tools do: SIGPIPE's default action ends the process without a word. Rust ignores
/// SIGPIPE, which turns the closed pipe into a panic in `println!`. The daemon and the
/// sandbox keep ignoring it: a closed stdout must not stop them; nor `notify`, which writes
/// to a hook's stdin, and a hook that exits without reading must not end lipost.
fn die_quietly_on_closed_pipe(command: &cli::Command) {
    if matches!(
        command,
        cli::Command::Run | cli::Command::Sandbox { .. } | cli::Command::Notify(_)
    ) {
        return;
    }
    // SAFETY: SIG_DFL installs no handler code, and a disposition may be changed from any
    // thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, cli::Command::InspectPdf) {
        // The daemon's capped child: no runtime, no threads, no logging, one answer.
        return std::process::ExitCode::from(lipost::media::pdf::inspect_stdin());
    }
    die_quietly_on_closed_pipe(&cli.command);
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli::run(cli));
    // A store call stuck in the blocking pool (a hung disk) must not keep the process from
    // ending once the command is done.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
