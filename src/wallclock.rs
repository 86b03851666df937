//! Sleeping until a wall-clock instant, and measuring how long ago something was, suspend
//! included.
//!
//! tokio's timers run on CLOCK_MONOTONIC, which stops while the machine is suspended: a
//! sleep computed before a suspend ends late by the time spent suspended. A `timerfd` on
//! CLOCK_REALTIME armed at an absolute time fires at the wall time itself (the kernel checks
//! realtime timers again at resume), and `TFD_TIMER_CANCEL_ON_SET` ends it early when the
//! clock is set (NTP step, manual change), so the caller recomputes. One timer per sleep and
//! no periodic wake-up. Where a timerfd cannot be made, tokio's sleep is the fallback.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use chrono::{DateTime, Utc};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A moment on CLOCK_BOOTTIME: like `std::time::Instant` (CLOCK_MONOTONIC, never set back)
/// but counting a suspend too. A claim's age is measured on it: a node suspended past its
/// lease must know it was, or it would send a post another node has taken over.
#[derive(Debug, Clone, Copy)]
pub struct BootInstant(std::time::Duration);

impl BootInstant {
    pub fn now() -> BootInstant {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: plain syscall writing into `t`; CLOCK_BOOTTIME exists since Linux 2.6.39.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut t) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME)");
        BootInstant(std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
    }

    pub fn elapsed(self) -> std::time::Duration {
        BootInstant::now().0.saturating_sub(self.0)
    }
}

/// Returns at `at` on the wall clock, or earlier if the clock was set meanwhile (the caller
/// looks at the time again either way).
pub async fn sleep_until(at: DateTime<Utc>) {
    match Timer::arm(at) {
        Ok(timer) => timer.wait().await,
        Err(e) => {
            tracing::debug!(error = %e, "no timerfd; sleeping on the monotonic clock");
            let d = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(d).await
        }
    }
}

/// Returns once the wall clock reads `at` or later, for a short wait (a post claimed ahead of
/// its due time): never early, even if the clock is set back meanwhile. On tokio's timer, not
/// a timerfd as [`sleep_until`]: a burst claimed ahead is a thousand waits at once, each well
/// under a second, so a descriptor each would be too many and a suspend hardly matters.
pub async fn reached(at: DateTime<Utc>) {
    while let Ok(left) = (at - Utc::now()).to_std() {
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left).await;
    }
}

struct Timer {
    fd: AsyncFd<OwnedFd>,
}

impl Timer {
    fn arm(at: DateTime<Utc>) -> io::Result<Timer> {
        // SAFETY: plain syscall; the descriptor is owned at once.
        let raw = unsafe {
            libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // An all-zero expiry would disarm the timer: an instant in the past is 1 ns after
        // the epoch, which has passed, so it fires at once.
        let (sec, nsec) = match (at.timestamp(), at.timestamp_subsec_nanos()) {
            (s, n) if s > 0 => (s, n),
            _ => (0, 1),
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: sec as libc::time_t,
                tv_nsec: nsec as _,
            },
        };
        // SAFETY: valid descriptor and itimerspec; the old value is not asked for.
        let r = unsafe {
            libc::timerfd_settime(
                fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the `OwnedFd` moves into the `AsyncFd` and is closed only when it drops.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(Timer { fd })
    }

    async fn wait(self) {
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return;
            };
            let mut ticks = [0u8; 8];
            // SAFETY: reads at most 8 bytes into an 8-byte buffer.
            let n = unsafe {
                libc::read(
                    self.fd.get_ref().as_raw_fd(),
                    ticks.as_mut_ptr().cast(),
                    ticks.len(),
                )
            };
            if n == 8 {
                return;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => ready.clear_ready(),
                // ECANCELED: the clock was set; anything else: do not spin on a broken timer.
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn boot_instant_measures_time_passed() {
        let t = BootInstant::now();
        std::thread::sleep(Duration::from_millis(30));
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(30) && e < Duration::from_secs(5),
            "{e:?}"
        );
    }

    /// As a caller does: a wait may end early when the clock is set (NTP steps this machine's
    /// clock now and then), and is then made again.
    async fn until(at: DateTime<Utc>) {
        while Utc::now() < at {
            sleep_until(at).await;
        }
    }

    #[tokio::test]
    async fn fires_at_a_wall_clock_instant() {
        let at = Utc::now() + chrono::Duration::milliseconds(300);
        for _ in 0..5 {
            if Utc::now() >= at {
                break;
            }
            Timer::arm(at).expect("timerfd").wait().await;
        }
        assert!(Utc::now() >= at, "woke before {at}");
    }

    #[tokio::test]
    async fn a_past_instant_fires_at_once_and_a_later_one_waits() {
        let past = Utc::now() - chrono::Duration::hours(1);
        tokio::time::timeout(Duration::from_secs(10), sleep_until(past))
            .await
            .expect("a past instant returns at once");
        let later = Utc::now() + chrono::Duration::hours(1);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), until(later))
                .await
                .is_err(),
            "a sleep an hour long returned early"
        );
    }
}
