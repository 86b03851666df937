//! Posting slots: cron patterns per account (tokio-cron-scheduler's syntax: six fields with
//! seconds, parsed by croner as that crate does), read in the config's time zone.
//!
//! Pure calculation: the store reserves a slot, this module only lists the candidates.
//! Local times hold across daylight-saving changes (09:00 stays 09:00); a slot in a skipped
//! hour moves to the first minute after the gap; one in a repeated hour fires once.

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

#[derive(Debug, Clone)]
pub struct Slot {
    pattern: String,
    cron: Cron,
}

impl Slot {
    pub fn parse(pattern: &str) -> Result<Slot, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .build()
            .parse(pattern)
            .map_err(|e| format!("{e}; write six fields, sec min hour day month weekday, e.g. \"0 0 9 * * Mon-Fri\""))?;
        Ok(Slot {
            pattern: pattern.to_string(),
            cron,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// The next `n` slot times after `after`, over all of an account's slots, earliest first.
pub fn upcoming(slots: &[Slot], tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    // The search keeps the start's fraction of a second: from a whole second, a slot is
    // exactly its minute, so two posts of one slot hold the same `slot_at`.
    let start = after.trunc_subsecs(0).with_timezone(&tz);
    let mut all: Vec<DateTime<Utc>> = slots
        .iter()
        .flat_map(|s| {
            let mut t = start;
            std::iter::from_fn(move || {
                t = s.cron.find_next_occurrence(&t, false).ok()?;
                Some(t.with_timezone(&Utc))
            })
            .take(n)
        })
        .collect();
    all.sort();
    all.dedup();
    all.truncate(n);
    all
}

/// Every slot time in `[from, to)`, over all of an account's slots, earliest first.
pub fn between(
    slots: &[Slot],
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    // From a whole second (rounded up, so no slot before `from`), as in `upcoming`.
    let from = match from.trunc_subsecs(0) {
        whole if whole == from => whole,
        whole => whole + chrono::Duration::seconds(1),
    };
    let mut all = Vec::new();
    for s in slots {
        let mut t = from.with_timezone(&tz);
        let mut inclusive = true;
        while let Ok(next) = s.cron.find_next_occurrence(&t, inclusive) {
            if next.with_timezone(&Utc) >= to {
                break;
            }
            all.push(next.with_timezone(&Utc));
            (t, inclusive) = (next, false);
        }
    }
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn slot_times_are_whole_seconds_whatever_the_time_asked_from() {
        let slots = [Slot::parse("0 0 9 * * *").unwrap()];
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let nine = at("2026-12-02T08:00:00Z");
        assert_eq!(
            upcoming(&slots, tz, at("2026-12-02T07:12:13.438Z"), 1),
            vec![nine]
        );
        // A slot already begun is past.
        assert_eq!(
            upcoming(&slots, tz, at("2026-12-02T08:00:00.250Z"), 1),
            vec![nine + chrono::Duration::days(1)]
        );
        assert_eq!(
            between(
                &slots,
                tz,
                at("2026-12-02T07:00:00.5Z"),
                at("2026-12-03T00:00:00Z")
            ),
            vec![nine]
        );
        assert!(between(
            &slots,
            tz,
            at("2026-12-02T08:00:00.5Z"),
            at("2026-12-03T00:00:00Z")
        )
        .is_empty());
    }

    /// The next `n` slots after noon on `day`, as local times.
    fn next(patterns: &[&str], tz: Tz, day: (i32, u32, u32), n: usize) -> Vec<String> {
        let slots: Vec<Slot> = patterns.iter().map(|p| Slot::parse(p).unwrap()).collect();
        let after = tz
            .with_ymd_and_hms(day.0, day.1, day.2, 12, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        upcoming(&slots, tz, after, n)
            .into_iter()
            .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
            .collect()
    }

    #[test]
    fn nine_oclock_stays_nine_oclock_across_the_berlin_spring_change() {
        let tz = chrono_tz::Europe::Berlin;
        let got = next(&["0 0 9 * * Mon-Fri"], tz, (2026, 3, 26), 3);
        assert_eq!(
            got,
            [
                "2026-03-27 09:00 CET",
                "2026-03-30 09:00 CEST",
                "2026-03-31 09:00 CEST"
            ]
        );
        // And in UTC the slot moved by the hour the clocks did.
        let slots = [Slot::parse("0 0 9 * * Mon-Fri").unwrap()];
        let after = tz
            .with_ymd_and_hms(2026, 3, 26, 12, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let utc: Vec<String> = upcoming(&slots, tz, after, 2)
            .into_iter()
            .map(|t| t.format("%H:%M").to_string())
            .collect();
        assert_eq!(utc, ["08:00", "07:00"]);
    }

    #[test]
    fn a_slot_in_the_skipped_hour_is_moved_not_lost() {
        let got = next(
            &["0 30 2 * * *"],
            chrono_tz::Europe::Berlin,
            (2026, 3, 28),
            2,
        );
        assert_eq!(got, ["2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST"]);
    }

    #[test]
    fn new_york_fall_back_keeps_local_times_and_fires_a_repeated_hour_once() {
        let tz = chrono_tz::America::New_York;
        assert_eq!(
            next(&["0 0 9 * * *"], tz, (2026, 10, 31), 2),
            ["2026-11-01 09:00 EST", "2026-11-02 09:00 EST"]
        );
        assert_eq!(
            next(&["0 30 1 * * *"], tz, (2026, 10, 31), 2),
            ["2026-11-01 01:30 EDT", "2026-11-02 01:30 EST"]
        );
    }

    #[test]
    fn new_york_spring_forward_moves_the_skipped_slot() {
        let got = next(
            &["0 30 2 * * *", "0 0 9 * * *"],
            chrono_tz::America::New_York,
            (2026, 3, 7),
            3,
        );
        assert_eq!(
            got,
            [
                "2026-03-08 03:00 EDT",
                "2026-03-08 09:00 EDT",
                "2026-03-09 02:30 EDT"
            ]
        );
    }

    #[test]
    fn between_takes_the_whole_window_and_nothing_past_it() {
        let tz = chrono_tz::Europe::Berlin;
        let slots: Vec<Slot> = ["0 0 9 * * *", "0 0 0 * * *", "0 30 2 * * *"]
            .iter()
            .map(|p| Slot::parse(p).unwrap())
            .collect();
        let from = tz
            .with_ymd_and_hms(2027, 10, 31, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let to = tz
            .with_ymd_and_hms(2027, 11, 1, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let got: Vec<String> = between(&slots, tz, from, to)
            .into_iter()
            .map(|t| t.with_timezone(&tz).format("%H:%M %Z").to_string())
            .collect();
        // Midnight at the start is in, the next midnight is not; 02:30 repeats but fires once.
        assert_eq!(got, ["00:00 CEST", "02:30 CEST", "09:00 CET"]);
    }

    #[test]
    fn a_bad_pattern_is_explained() {
        let e = Slot::parse("9am weekdays").unwrap_err();
        assert!(e.contains("six fields"), "{e}");
    }
}
