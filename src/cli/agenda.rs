//! `lipost agenda`: what goes out when, day by day in the config's time zone, with posting
//! slots, holds and each account's count against its daily cap. Read-only.
//!
//! The picture is built once as plain data ([`Agenda`]), then printed as text (coloured on
//! a terminal, plain otherwise, `NO_COLOR` respected, via `anstream`) or as JSON. Days are
//! local days; the daily cap counts UTC days (it resets at 00:00 UTC), and says so.

use std::collections::BTreeSet;
use std::io::Write;

use anstyle::{AnsiColor, Style};
use anyhow::{bail, Result};
use chrono::{DateTime, Duration, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::Config;
use crate::post::PostState;
use crate::store::{AgendaPost, Store};

/// The longest window `--days` accepts: the slot times of every day are computed.
pub const MAX_DAYS: u32 = 92;

/// Where a line of slots wraps.
const SLOT_WIDTH: usize = 100;

/// How much of a post's text a line shows.
const SNIPPET: usize = 50;

pub struct Args<'a> {
    pub days: u32,
    pub account: Option<&'a str>,
    /// The first day (local); today when `None`.
    pub from: Option<NaiveDate>,
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Agenda {
    timezone: String,
    from: NaiveDate,
    days_shown: u32,
    generated_at: DateTime<Utc>,
    /// Member accounts whose posts wait for `lipost auth login`.
    needs_login: Vec<LoginRow>,
    /// Dead posts: nothing happens to them until a person acts.
    needs_person: Vec<PersonRow>,
    /// Posts due by now and still waiting (held, or waiting for a retry, or being sent).
    now: Vec<PostRow>,
    days: Vec<Day>,
}

#[derive(Debug, Serialize)]
struct LoginRow {
    account: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct PersonRow {
    id: String,
    account: String,
    due_at: DateTime<Utc>,
    reason: String,
    message: Option<String>,
    text: String,
}

#[derive(Debug, Serialize)]
struct PostRow {
    id: String,
    account: String,
    state: PostState,
    /// When it goes (or went) out; for a held post, its due time.
    at: DateTime<Utc>,
    /// `at` in the config's time zone, RFC 3339 with its offset.
    local: String,
    due_at: DateTime<Utc>,
    slot_at: Option<DateTime<Utc>>,
    /// The first characters of its text, on one line.
    text: String,
    hold: Option<HoldRow>,
}

#[derive(Debug, Serialize)]
struct HoldRow {
    /// `posts.hold_reason` as stored.
    reason: String,
    until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct Day {
    date: NaiveDate,
    weekday: String,
    /// The clocks change on this day.
    dst_change: Option<DstChange>,
    posts: Vec<PostRow>,
    slots: Vec<SlotRow>,
    caps: Vec<CapRow>,
}

#[derive(Debug, Serialize)]
struct DstChange {
    at: DateTime<Utc>,
    /// `back` or `forward`.
    direction: &'static str,
    /// Local wall time just before and at the change: "03:00" → "02:00".
    from: String,
    to: String,
    offset_before: String,
    offset_after: String,
}

#[derive(Debug, Serialize)]
struct SlotRow {
    account: String,
    at: DateTime<Utc>,
    local: String,
    /// The post that holds it (`posts.slot_at`); free when `None`.
    taken_by: Option<String>,
}

#[derive(Debug, Serialize)]
struct CapRow {
    account: String,
    /// The cap resets at 00:00 UTC, so it counts this UTC day (same date as the local day).
    utc_day: NaiveDate,
    published: u32,
    /// Waiting posts placed on this UTC day (held ones at their due time).
    planned: u32,
    count: u32,
    /// `None`: the account is no longer in the config.
    cap: Option<u32>,
}

/// The start of a local day; where midnight does not exist (a change at 00:00), the first
/// minute that does.
fn day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut t = date.and_hms_opt(0, 0, 0).expect("midnight");
    for _ in 0..(24 * 4) {
        if let Some(x) = tz.from_local_datetime(&t).earliest() {
            return x.with_timezone(&Utc);
        }
        t += Duration::minutes(15);
    }
    // No zone skips a whole day's quarter hours; keep going with UTC rather than fail.
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
}

fn offset_at(tz: Tz, t: DateTime<Utc>) -> chrono::FixedOffset {
    tz.offset_from_utc_datetime(&t.naive_utc()).fix()
}

/// The clock change inside `[start, end)`, if any.
fn dst_change(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<DstChange> {
    let before = offset_at(tz, start);
    let last = end - Duration::seconds(1);
    let after = offset_at(tz, last);
    if before == after {
        return None;
    }
    // The first whole second with the new offset.
    let (mut lo, mut hi) = (start.timestamp(), last.timestamp());
    let at = |s: i64| DateTime::from_timestamp(s, 0).expect("in range");
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, at(mid)) == before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let hi = at(hi);
    let hm = |o: chrono::FixedOffset| hi.with_timezone(&o).format("%H:%M").to_string();
    Some(DstChange {
        at: hi,
        direction: if after.local_minus_utc() < before.local_minus_utc() {
            "back"
        } else {
            "forward"
        },
        from: hm(before),
        to: hm(after),
        offset_before: before.to_string(),
        offset_after: after.to_string(),
    })
}

fn snippet(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > SNIPPET {
        let mut s: String = flat.chars().take(SNIPPET - 1).collect();
        s.push('…');
        s
    } else {
        flat
    }
}

fn post_row(tz: Tz, p: &AgendaPost) -> PostRow {
    let at = p.at();
    PostRow {
        id: p.id.clone(),
        account: p.account.clone(),
        state: p.state,
        at,
        local: at.with_timezone(&tz).to_rfc3339(),
        due_at: p.due_at,
        slot_at: p.slot_at,
        text: snippet(&p.text),
        hold: p.hold_reason.as_ref().map(|r| HoldRow {
            reason: r.clone(),
            until: p.hold_until,
        }),
    }
}

fn build(config: &Config, store: &Store, args: &Args<'_>, now: DateTime<Utc>) -> Result<Agenda> {
    let tz = config.timezone;
    if args.days == 0 || args.days > MAX_DAYS {
        bail!("--days {}: give 1 to {MAX_DAYS}", args.days);
    }
    if let Some(a) = args.account {
        if config.account(a).is_none() {
            let known: Vec<&str> = config.accounts.keys().map(String::as_str).collect();
            bail!(
                "no account {a:?} in {}; configured: {}",
                config.path.display(),
                known.join(", ")
            );
        }
    }
    let from = args
        .from
        .unwrap_or_else(|| now.with_timezone(&tz).date_naive());
    let dates: Vec<NaiveDate> = (0..args.days)
        .map(|i| from + Duration::days(i64::from(i)))
        .collect();
    let last = *dates.last().expect("at least one day");
    let start = day_start(tz, from);
    let end = day_start(tz, last + Duration::days(1));
    // The cap's UTC days reach past the local ones on one side or the other.
    let utc_midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("0"));
    let q_from = start.min(utc_midnight(from));
    let q_to = end.max(utc_midnight(last + Duration::days(1)));

    let posts = store.agenda(q_from, q_to, now, args.account)?;
    let waiting = |p: &AgendaPost| matches!(p.state, PostState::Scheduled | PostState::Publishing);
    let overdue = |p: &AgendaPost| waiting(p) && p.due_at <= now;

    let accounts: Vec<&crate::config::Account> = config
        .accounts
        .values()
        .filter(|a| args.account.is_none_or(|want| a.name == want))
        .collect();
    let slot_times: Vec<(&str, Vec<DateTime<Utc>>)> = accounts
        .iter()
        .filter(|a| !a.slots.is_empty())
        .map(|a| {
            (
                a.name.as_str(),
                crate::slots::between(&a.slots, tz, start, end),
            )
        })
        .collect();

    let mut days = Vec::new();
    for &date in &dates {
        let (d_start, d_end) = (day_start(tz, date), day_start(tz, date + Duration::days(1)));
        let in_day = |t: DateTime<Utc>| t >= d_start && t < d_end;
        let day_posts: Vec<PostRow> = posts
            .iter()
            .filter(|p| !overdue(p) && in_day(p.at()))
            .map(|p| post_row(tz, p))
            .collect();
        let mut slots = Vec::new();
        for (account, times) in &slot_times {
            for &t in times.iter().filter(|t| in_day(**t)) {
                let taken_by = posts
                    .iter()
                    .find(|p| p.account == *account && p.slot_at == Some(t))
                    .map(|p| p.id.clone());
                slots.push(SlotRow {
                    account: account.to_string(),
                    at: t,
                    local: t.with_timezone(&tz).to_rfc3339(),
                    taken_by,
                });
            }
        }
        let (u_start, u_end) = (utc_midnight(date), utc_midnight(date + Duration::days(1)));
        let in_utc_day = |t: DateTime<Utc>| t >= u_start && t < u_end;
        let mut names: BTreeSet<&str> = slots.iter().map(|s| s.account.as_str()).collect();
        let mut caps = Vec::new();
        for p in &posts {
            names.insert(p.account.as_str());
        }
        for name in names {
            let mine = posts.iter().filter(|p| p.account == name);
            let published = mine
                .clone()
                // A deleted post went out all the same: it counts against the cap.
                .filter(|p| {
                    matches!(p.state, PostState::Published | PostState::Deleted)
                        && in_utc_day(p.at())
                })
                .count() as u32;
            // A post due by now goes out as soon as it may: on today's UTC day.
            let planned = mine
                .filter(|p| waiting(p) && in_utc_day(if overdue(p) { now } else { p.at() }))
                .count() as u32;
            let shown = slots.iter().any(|s| s.account == name)
                || day_posts.iter().any(|p| p.account == name);
            if published + planned == 0 && !shown {
                continue;
            }
            caps.push(CapRow {
                account: name.to_string(),
                utc_day: date,
                published,
                planned,
                count: published + planned,
                cap: config.account(name).map(|a| a.daily_cap),
            });
        }
        days.push(Day {
            date,
            weekday: date.format("%a").to_string(),
            dst_change: dst_change(tz, d_start, d_end),
            posts: day_posts,
            slots,
            caps,
        });
    }

    let needs_person = store
        .needs_person(args.account)?
        .into_iter()
        .map(|n| PersonRow {
            id: n.id,
            account: n.account,
            due_at: n.due_at,
            reason: n.reason,
            message: n.message,
            text: snippet(&n.text),
        })
        .collect();
    // The member accounts whose tokens the shown accounts post with.
    let members: BTreeSet<&str> = accounts.iter().map(|a| a.token_account()).collect();
    let needs_login = store
        .tokens()?
        .into_iter()
        .filter(|t| members.contains(t.account.as_str()))
        .filter_map(|t| {
            t.needs_reauth.map(|reason| LoginRow {
                account: t.account,
                reason,
            })
        })
        .collect();
    Ok(Agenda {
        timezone: tz.name().to_string(),
        needs_login,
        from,
        days_shown: args.days,
        generated_at: now,
        needs_person,
        now: posts
            .iter()
            .filter(|p| overdue(p))
            .map(|p| post_row(tz, p))
            .collect(),
        days,
    })
}

pub fn agenda(config: &Config, store: &Store, args: Args<'_>) -> Result<()> {
    let agenda = build(config, store, &args, Utc::now())?;
    let mut out = anstream::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&agenda)?)?;
    } else {
        render(&mut out, config.timezone, &agenda)?;
    }
    Ok(())
}

const HEAD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const HELD: Style = AnsiColor::Yellow.on_default();
const DEAD: Style = AnsiColor::Red.on_default().bold();
const FREE: Style = AnsiColor::Green.on_default();
const CLOCKS: Style = AnsiColor::Magenta.on_default().bold();
const OVER: Style = AnsiColor::Red.on_default();

/// Column widths shared by every post line, so the picture lines up across days.
struct Widths {
    time: usize,
    account: usize,
    id: usize,
    state: usize,
    text: usize,
}

fn time_of(tz: Tz, t: DateTime<Utc>, with_date: bool) -> String {
    let f = if with_date {
        "%Y-%m-%d %H:%M %Z"
    } else {
        "%H:%M %Z"
    };
    t.with_timezone(&tz).format(f).to_string()
}

fn hold_words(tz: Tz, h: &HoldRow) -> String {
    match h.until {
        Some(u) => format!("held: {} until {}", h.reason, time_of(tz, u, true)),
        None => format!("held: {}", h.reason),
    }
}

fn post_line(
    out: &mut impl Write,
    tz: Tz,
    w: &Widths,
    p: &PostRow,
    with_date: bool,
) -> std::io::Result<()> {
    let state = format!("{:<w$}", p.state.as_str(), w = w.state);
    let state_style = match p.state {
        PostState::Published | PostState::Deleted => DIM,
        _ if p.hold.is_some() => HELD,
        _ => Style::new(),
    };
    let mut line = format!(
        "  {:<tw$}  {:<aw$}  {:<iw$}  {state_style}{state}{state_style:#}  ",
        time_of(tz, p.at, with_date),
        p.account,
        p.id,
        tw = w.time,
        aw = w.account,
        iw = w.id,
    );
    match &p.hold {
        Some(h) => line.push_str(&format!(
            "{:<xw$}  {HELD}{}{HELD:#}",
            p.text,
            hold_words(tz, h),
            xw = w.text
        )),
        None => line.push_str(&p.text),
    }
    writeln!(out, "{}", line.trim_end())
}

fn render(out: &mut impl Write, tz: Tz, a: &Agenda) -> std::io::Result<()> {
    let all_posts = a
        .now
        .iter()
        .chain(a.days.iter().flat_map(|d| d.posts.iter()));
    let mut w = Widths {
        time: 0,
        account: 0,
        id: 0,
        state: 0,
        text: 0,
    };
    for p in all_posts {
        w.time = w.time.max(time_of(tz, p.at, false).chars().count());
        w.account = w.account.max(p.account.chars().count());
        w.id = w.id.max(p.id.chars().count());
        w.state = w.state.max(p.state.as_str().len());
        w.text = w.text.max(p.text.chars().count());
    }
    let last = a.days.last().map_or(a.from, |d| d.date);
    writeln!(
        out,
        "{HEAD}agenda {} to {} ({}){HEAD:#}",
        a.from, last, a.timezone
    )?;

    if !a.needs_person.is_empty() || !a.needs_login.is_empty() {
        writeln!(out)?;
        writeln!(out, "{DEAD}needs a person{DEAD:#}")?;
    }
    for l in &a.needs_login {
        writeln!(
            out,
            "  {DEAD}login{DEAD:#}  {}  needs re-auth: {}  → `lipost auth login --account {}`",
            l.account, l.reason, l.account
        )?;
    }
    if !a.needs_person.is_empty() {
        let iw = a.needs_person.iter().map(|n| n.id.chars().count()).max();
        let aw = a
            .needs_person
            .iter()
            .map(|n| n.account.chars().count())
            .max();
        for n in &a.needs_person {
            let message = n
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            writeln!(
                out,
                "  {DEAD}dead{DEAD:#}  {:<iw$}  {:<aw$}  {}{message}  {}",
                n.id,
                n.account,
                n.reason,
                n.text,
                iw = iw.unwrap_or(0),
                aw = aw.unwrap_or(0),
            )?;
        }
        writeln!(
            out,
            "  {DIM}see `lipost dead`; then `lipost retry ID`, `lipost mark-published ID URN` or `lipost cancel ID`{DIM:#}"
        )?;
    }

    if !a.now.is_empty() {
        // Full dates here: these may be due since any day.
        let w_now = Widths {
            time: a
                .now
                .iter()
                .map(|p| time_of(tz, p.at, true).chars().count())
                .max()
                .unwrap_or(0),
            ..w
        };
        writeln!(out)?;
        writeln!(out, "{HEAD}now{HEAD:#}  {DIM}due, still waiting{DIM:#}")?;
        for p in &a.now {
            post_line(out, tz, &w_now, p, true)?;
        }
    }

    for d in &a.days {
        writeln!(out)?;
        let clocks = d
            .dst_change
            .as_ref()
            .map(|c| {
                format!(
                    "  {CLOCKS}clocks go {} {}→{}{CLOCKS:#}",
                    c.direction, c.from, c.to
                )
            })
            .unwrap_or_default();
        writeln!(out, "{HEAD}{} {}{HEAD:#}{clocks}", d.weekday, d.date)?;
        if d.posts.is_empty() {
            writeln!(out, "  {DIM}no posts{DIM:#}")?;
        }
        for p in &d.posts {
            post_line(out, tz, &w, p, false)?;
        }
        let accounts: BTreeSet<&str> = d.slots.iter().map(|s| s.account.as_str()).collect();
        let aw = accounts
            .iter()
            .map(|a| a.chars().count())
            .max()
            .unwrap_or(0);
        for account in accounts {
            // Wrapped, so an account with many slots still reads as a block.
            let lead = format!("  slots  {account:<aw$} ");
            let mut line = lead.clone();
            let mut width = lead.chars().count();
            for s in d.slots.iter().filter(|s| s.account == account) {
                let at = DateTime::parse_from_rfc3339(&s.local)
                    .map(|t| t.format("%H:%M").to_string())
                    .unwrap_or_default();
                let (plain, styled) = match &s.taken_by {
                    Some(id) => (
                        format!(" {at} taken ({id})"),
                        format!(" {at} {DIM}taken ({id}){DIM:#}"),
                    ),
                    None => (format!(" {at} free"), format!(" {at} {FREE}free{FREE:#}")),
                };
                if width > lead.chars().count() && width + plain.chars().count() > SLOT_WIDTH {
                    writeln!(out, "{line}")?;
                    line = " ".repeat(lead.chars().count());
                    width = line.len();
                }
                width += plain.chars().count();
                line.push_str(&styled);
            }
            writeln!(out, "{line}")?;
        }
        let cw = d
            .caps
            .iter()
            .map(|c| c.account.chars().count())
            .max()
            .unwrap_or(0);
        for c in &d.caps {
            // Only posts still to go can wait: those published already (under a higher cap,
            // say) are past.
            let waiting = c
                .cap
                .map_or(0, |cap| c.count.saturating_sub(cap).min(c.planned));
            let cap = c.cap.map_or("?".to_string(), |cap| cap.to_string());
            let note = match c.cap {
                None => "  (account no longer in the config)".to_string(),
                Some(_) if waiting > 0 => {
                    format!("  {OVER}{waiting} over: they wait for the next UTC day{OVER:#}")
                }
                Some(_) => String::new(),
            };
            writeln!(
                out,
                "  cap    {:<cw$}  {}/{cap} (UTC day){note}",
                c.account, c.count
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_berlin_autumn_change_is_found_and_worded() {
        let tz = chrono_tz::Europe::Berlin;
        let d = NaiveDate::from_ymd_opt(2027, 10, 31).unwrap();
        let c = dst_change(tz, day_start(tz, d), day_start(tz, d.succ_opt().unwrap())).unwrap();
        assert_eq!(
            (c.direction, c.from.as_str(), c.to.as_str()),
            ("back", "03:00", "02:00")
        );
        assert_eq!(c.at.to_rfc3339(), "2027-10-31T01:00:00+00:00");
        // A Berlin day is 25 hours long that day, 24 the next, with no change.
        assert_eq!(
            day_start(tz, d.succ_opt().unwrap()) - day_start(tz, d),
            Duration::hours(25)
        );
        let next = d.succ_opt().unwrap();
        assert!(dst_change(
            tz,
            day_start(tz, next),
            day_start(tz, next.succ_opt().unwrap())
        )
        .is_none());
    }

    #[test]
    fn the_new_york_spring_change_goes_forward() {
        let tz = chrono_tz::America::New_York;
        let d = NaiveDate::from_ymd_opt(2027, 3, 14).unwrap();
        let c = dst_change(tz, day_start(tz, d), day_start(tz, d.succ_opt().unwrap())).unwrap();
        assert_eq!(
            (c.direction, c.from.as_str(), c.to.as_str()),
            ("forward", "02:00", "03:00")
        );
    }

    #[test]
    fn a_midnight_that_does_not_exist_starts_the_day_at_its_first_minute() {
        // Santiago moves its clocks forward at 00:00 (to 01:00) in September.
        let tz = chrono_tz::America::Santiago;
        let d = NaiveDate::from_ymd_opt(2027, 9, 5).unwrap();
        let s = day_start(tz, d).with_timezone(&tz);
        assert_eq!(s.date_naive(), d);
        assert_eq!(s.format("%H:%M").to_string(), "01:00");
    }

    #[test]
    fn snippets_are_one_line_and_cut_with_an_ellipsis() {
        assert_eq!(snippet("a\n\nb  c"), "a b c");
        let long = "x".repeat(80);
        let s = snippet(&long);
        assert_eq!(s.chars().count(), SNIPPET);
        assert!(s.ends_with('…'));
    }
}
