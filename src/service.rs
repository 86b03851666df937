//! Running under systemd: readiness, watchdog, the status line, and journald logging.
//!
//! Everything here is a no-op without systemd (no `NOTIFY_SOCKET`, no `JOURNAL_STREAM`).
//! It reports state; it never changes any.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

fn send(state: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(state) {
        debug!(error = %e, "sd_notify failed");
    }
}

/// The store is open and the folder's existing drafts are taken.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// Shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Config reload: RELOADING=1 with the monotonic time, then READY=1 when done.
pub fn reloading() {
    if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
        send(&[NotifyState::Reloading, now]);
    }
}

/// "I am alive": sent by the scheduler's loop, so a hung scheduler gets restarted.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to send WATCHDOG=1: half of `WATCHDOG_USEC`, if systemd asked for it.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// The one-line summary `systemctl status` shows.
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// True when stderr is connected to the journal (systemd sets `JOURNAL_STREAM`).
pub fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}
