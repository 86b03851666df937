//! What `status`, `list`, `show` and `dead` print, as text or JSON. Read-only. `show` includes
//! a post's first comment and its edits.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::Config;
use crate::post::{Attempt, HoldReason, Post, PostState};
use crate::store::{Comment, CommentStatus, EditStatus, Store};

fn local(config: &Config, t: DateTime<Utc>) -> String {
    t.with_timezone(&config.timezone)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn attempt_line(config: &Config, a: &Attempt) -> String {
    let status = a
        .http_status
        .map(|s| format!("HTTP {s}"))
        .unwrap_or_else(|| "-".into());
    let code = a
        .error_code
        .as_deref()
        .map(|c| format!(" {c}"))
        .unwrap_or_default();
    let next = a
        .next_attempt_at
        .map(|t| format!(" → next try {}", local(config, t)))
        .unwrap_or_default();
    format!(
        "{}  {:<24} {}{}  {}{}",
        local(config, a.started_at),
        a.outcome.as_deref().unwrap_or("in progress"),
        status,
        code,
        a.message.as_deref().unwrap_or(""),
        next
    )
}

/// One member account's token health, for `status`.
#[derive(serde::Serialize)]
struct Health {
    account: String,
    member_urn: Option<String>,
    /// `ok`, `expiring`, `needs_reauth`, `no_token`.
    state: &'static str,
    summary: String,
    /// Scheduled posts waiting for this account's login.
    held_posts: usize,
}

fn token_health(config: &Config, store: &Store) -> Result<Vec<Health>> {
    let tokens = store.tokens()?;
    let scheduled = store.list(Some(PostState::Scheduled), usize::MAX >> 1)?;
    let now = Utc::now();
    let members: std::collections::BTreeSet<&str> = config
        .accounts
        .values()
        .map(|a| a.token_account())
        .collect();
    let mut out = Vec::new();
    for member in members {
        let t = tokens.iter().find(|t| t.account == member);
        let (state, summary) = match t {
            None if config.linkedin.mode == crate::config::Mode::Sandbox => (
                "ok",
                "no token yet (the sandbox mints one at first use)".to_string(),
            ),
            None => (
                "no_token",
                format!("no token: run `lipost auth login --account {member}`"),
            ),
            Some(t) => match &t.needs_reauth {
                Some(why) => ("needs_reauth", format!("needs re-auth: {why}")),
                None => {
                    let left = t.access_expires_at - now;
                    let renewable = t.usable_refresh(now).is_some()
                        || t.source == crate::store::TokenSource::Sandbox;
                    if !renewable && left <= chrono::Duration::days(14) {
                        (
                            "expiring",
                            format!(
                                "expiring in {} days ({}): log in again before then",
                                left.num_days().max(0),
                                local(config, t.access_expires_at)
                            ),
                        )
                    } else {
                        (
                            "ok",
                            format!(
                                "ok (access token until {}{})",
                                local(config, t.access_expires_at),
                                if renewable {
                                    ", renewed automatically"
                                } else {
                                    ""
                                }
                            ),
                        )
                    }
                }
            },
        };
        let held = if matches!(state, "needs_reauth" | "no_token") {
            scheduled
                .iter()
                .filter(|p| {
                    config
                        .account(&p.account)
                        .is_some_and(|a| a.token_account() == member)
                })
                .count()
        } else {
            0
        };
        out.push(Health {
            account: member.to_string(),
            member_urn: t.map(|t| t.member_urn.clone()),
            state,
            summary,
            held_posts: held,
        });
    }
    Ok(out)
}

/// The page accounts, by name: `(name, organization URN, member whose token posts)`. Their
/// token is the member's, so `status` shows its health once, under the member.
fn pages(config: &Config) -> impl Iterator<Item = (&str, &str, &str)> {
    let mut pages: Vec<_> = config
        .accounts
        .values()
        .filter_map(|a| match &a.kind {
            crate::config::AccountKind::Organization { organization, via } => {
                Some((a.name.as_str(), organization.as_str(), via.as_str()))
            }
            crate::config::AccountKind::Member => None,
        })
        .collect();
    pages.sort();
    pages.into_iter()
}

pub fn status(config: &Config, store: &Store, as_json: bool) -> Result<()> {
    let health = token_health(config, store)?;
    let counts = store.counts()?;
    let next = store.next_scheduled(5)?;
    let failures = store.recent_failures(5)?;
    let dead = store.dead_letters()?;
    let holds = store.holds_by_account()?;
    let nodes = store.nodes(config.publisher.claim_lease)?;
    let target = crate::store::Target::of(config).to_string();
    if as_json {
        let counts: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), json!(n)))
            .collect();
        let out = json!({
            "database": target,
            "nodes": nodes,
            "version_warning": crate::linkedin::version_warning(&config.linkedin.version, Utc::now()),
            "counts": counts,
            "next": next,
            "latest_failures": failures,
            "dead_letters": dead.len(),
            "holds": holds,
            "accounts": health,
            "pages": pages(config)
                .map(|(account, organization, via)| json!({"account": account, "organization": organization, "via": via}))
                .collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("lipost status ({target})");
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!("posts: {}", summary.join(", "));
    if let Some(w) = crate::linkedin::version_warning(&config.linkedin.version, Utc::now()) {
        println!("warning: {w}");
    }
    for (reason, n) in store.hold_counts()? {
        if reason == HoldReason::ApiVersionRetired {
            println!("held: {n} posts ({reason}): LinkedIn no longer serves linkedin.version {}; set a recent month, then `systemctl reload lipost`", config.linkedin.version);
        }
    }
    if !holds.is_empty() {
        println!();
        println!("held (reason, account, posts, first until):");
        for h in &holds {
            println!(
                "  {:<19} {:<12} {:>5}  {}  {}",
                h.reason.as_str(),
                h.account,
                h.posts,
                local(config, h.until),
                h.reason.meaning()
            );
        }
    }
    if !nodes.is_empty() {
        println!();
        print_nodes(config, &nodes);
    }
    println!();
    println!("accounts:");
    for h in &health {
        let held = if h.held_posts > 0 {
            format!("; {} posts held until it logs in again", h.held_posts)
        } else {
            String::new()
        };
        println!("  {:<12} {}{held}", h.account, h.summary);
    }
    for (name, organization, via) in pages(config) {
        println!("  {name:<12} page {organization}, posted with {via}'s login");
    }
    println!();
    if next.is_empty() {
        println!("next due: nothing scheduled");
    } else {
        println!("next due:");
        for p in &next {
            let doubt = match (p.hold_reason, p.hold_until) {
                // Ended by an event: the time shown is the deadline, not when it goes out.
                (Some(r), Some(_)) if r.is_lifted() => {
                    format!("  (held: {r}; goes out once that ends, or is dead as too_late at this time)")
                }
                (Some(r), Some(_)) => format!("  (held: {r})"),
                _ if p.in_doubt_since.is_some() => {
                    "  (in doubt: resolving before any resend)".to_string()
                }
                _ => String::new(),
            };
            println!(
                "  {}  {}  ({}){doubt}",
                local(config, p.next_attempt_at),
                p.id,
                p.account
            );
        }
    }
    println!();
    if failures.is_empty() {
        println!("latest failures: none");
    } else {
        println!("latest failures:");
        for a in &failures {
            println!("  {}  {}", a.post_id, attempt_line(config, a));
        }
    }
    if !dead.is_empty() {
        println!();
        println!("{} dead letters: see `lipost dead`", dead.len());
    }
    Ok(())
}

/// `lipost nodes`: the daemons sharing a PostgreSQL database.
pub fn nodes(config: &Config, store: &Store, as_json: bool) -> Result<()> {
    let nodes = store.nodes(config.publisher.claim_lease)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(());
    }
    if config.database_url.is_none() {
        println!("one node: SQLite has one daemon at a time (the lock beside {}); several nodes need PostgreSQL", config.database.display());
        return Ok(());
    }
    if nodes.is_empty() {
        println!("no node has run on this database yet");
        return Ok(());
    }
    print_nodes(config, &nodes);
    Ok(())
}

fn print_nodes(config: &Config, nodes: &[crate::store::NodeRow]) {
    println!("nodes (id, host, pid, last heartbeat, posts in flight):");
    for n in nodes {
        let state = if n.alive {
            format!("{:.0}s ago", n.silent_for)
        } else {
            format!(
                "{:.0}s ago: stopped (its claims are resolved by the others)",
                n.silent_for
            )
        };
        println!(
            "  {:<16} {:<16} {:>7}  {}  {state}  {} in flight{}",
            n.node_id,
            n.host,
            n.pid,
            local(config, n.heartbeat_at),
            n.in_flight,
            if n.node_id == config.node_id {
                "  (this config's node_id)"
            } else {
                ""
            }
        );
    }
}

pub fn list(config: &Config, store: &Store, state: Option<PostState>, as_json: bool) -> Result<()> {
    let posts = store.list(state, 100_000)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&posts)?);
        return Ok(());
    }
    if posts.is_empty() {
        println!("no posts");
    }
    for p in posts {
        println!("{}", post_line(config, &p));
    }
    Ok(())
}

fn post_line(config: &Config, p: &Post) -> String {
    let slot = if p.slot_at.is_some() { "slot" } else { "    " };
    let hold = match (p.state, p.hold_reason) {
        (PostState::Scheduled, Some(r)) => r.as_str(),
        _ => "-",
    };
    format!(
        "{:<11} {} {slot}  {:<24} {:<12} {:<19} {}",
        p.state.as_str(),
        local(config, p.due_at),
        p.id,
        p.account,
        hold,
        p.post_urn.as_deref().unwrap_or("")
    )
}

pub fn show(config: &Config, store: &Store, id: &str, as_json: bool) -> Result<()> {
    let post = store.get(id)?;
    let attempts = store.attempts(id)?;
    let hold = store.hold_of(id)?;
    let comment = store.comment_of(id)?;
    let edits = store.edits_of(id)?;
    if as_json {
        let hold = hold
            .as_ref()
            .map(|h| json!({"reason": h.reason, "until": h.until}));
        let media = match &post.content {
            Some(content) => media_json(store, content)?,
            None => Vec::new(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"post": post, "hold": hold, "attempts": attempts, "media": media, "first_comment": comment, "edits": edits})
            )?
        );
        return Ok(());
    }
    println!("id          {}", post.id);
    println!("account     {}", post.account);
    println!("state       {}", post.state);
    println!("due         {}", local(config, post.due_at));
    if let Some(slot) = post.slot_at {
        println!(
            "slot        {} (reserved for this post)",
            local(config, slot)
        );
    }
    match (&hold, post.state) {
        (Some(h), PostState::Scheduled) => {
            let words = crate::scheduler::describe_hold(config, &post.account, h.reason, h.until);
            println!("held: {words} ({})", h.reason);
            println!("held until  {}", local(config, h.until));
        }
        (None, PostState::Scheduled)
            if post.slot_at == Some(post.next_attempt_at) && post.next_attempt_at > Utc::now() =>
        {
            // Not due yet, so not held: only waiting for its time.
            let words = crate::scheduler::describe_hold(
                config,
                &post.account,
                HoldReason::Slot,
                post.next_attempt_at,
            );
            println!("waiting     {words}")
        }
        (None, PostState::Scheduled) => {
            println!("next try    {}", local(config, post.next_attempt_at))
        }
        _ => {}
    }
    if let Some(urn) = &post.post_urn {
        println!("post URN    {urn}");
    }
    if let Some(t) = post.in_doubt_since {
        println!(
            "in doubt    since {} (a try may have reached LinkedIn)",
            local(config, t)
        );
    }
    if let Some(e) = &post.last_error {
        println!("last error  {e}");
    }
    println!("visibility  {}", post.visibility);
    println!(
        "tries used  {} (plus {} rate-limited)",
        post.attempts_used, post.rate_limited
    );
    println!("text:");
    for line in post.text.lines() {
        println!("  | {line}");
    }
    if let Some(content) = &post.content {
        show_content(config, store, content)?;
    }
    match (&comment, &post.first_comment) {
        (Some(c), _) => {
            println!("first comment: {}", comment_words(config, c));
            for line in c.text.lines() {
                println!("  | {line}");
            }
        }
        (None, Some(text)) => {
            println!("first comment: posted once the post is published");
            for line in text.lines() {
                println!("  | {line}");
            }
        }
        (None, None) => {}
    }
    for e in &edits {
        let words = match e.status {
            EditStatus::Pending => format!(
                "pending, next try {} ({} tries so far)",
                local(config, e.next_attempt_at),
                e.attempts
            ),
            EditStatus::Done => format!("done {}", local(config, e.updated_at)),
            EditStatus::Failed => format!(
                "failed {}: {}",
                local(config, e.updated_at),
                e.last_error.as_deref().unwrap_or("")
            ),
        };
        println!("edit ({}): {words}", e.status);
        if e.status != EditStatus::Done {
            for line in e.text.lines() {
                println!("  | {line}");
            }
        }
    }
    println!("attempts:");
    if attempts.is_empty() {
        println!("  none yet");
    }
    for a in &attempts {
        println!("  {}", attempt_line(config, a));
    }
    Ok(())
}

/// What a post carries besides its text, and where each of its files stands on LinkedIn's
/// side (one line per owner it was uploaded for).
fn show_content(config: &Config, store: &Store, content: &crate::content::Content) -> Result<()> {
    use crate::content::Content;
    match content {
        Content::Images { images } if images.len() == 1 => println!("content     an image"),
        Content::Images { images } => println!("content     {} images", images.len()),
        Content::Document { title, .. } => println!("content     a document: {title:?}"),
        Content::Video { title, .. } => match title {
            Some(t) => println!("content     a video: {t:?}"),
            None => println!("content     a video"),
        },
        Content::Article { url, title, .. } => match title {
            Some(t) => println!("content     a link card to {url}: {t:?}"),
            None => println!("content     a link card to {url}"),
        },
        Content::Poll {
            question,
            options,
            duration,
        } => println!(
            "content     a poll ({}): {question:?}, options {options:?}",
            serde_json::to_value(duration)?.as_str().unwrap_or("?")
        ),
    }
    for a in content.assets() {
        let alt = a
            .alt
            .as_deref()
            .map(|t| format!(", alt {t:?}"))
            .unwrap_or_default();
        println!(
            "  file      {} ({}, {} bytes, sha256 {}{alt})",
            a.file,
            a.kind.as_str(),
            a.bytes,
            &a.sha256[..12.min(a.sha256.len())]
        );
        let rows = store.media_rows(&a.sha256)?;
        if rows.is_empty() {
            println!("    upload  not started yet (uploads begin media.upload_ahead before the due time)");
        }
        for r in rows {
            let mut line = format!("    upload  {} for {}", r.status.as_str(), r.owner);
            if let Some(urn) = &r.urn {
                line.push_str(&format!(", {urn}"));
            }
            if let Some(t) = r.available_at {
                line.push_str(&format!(", available since {}", local(config, t)));
            } else if let Some(t) = r.uploaded_at {
                line.push_str(&format!(", uploaded {}", local(config, t)));
            }
            if let Some(e) = &r.last_error {
                line.push_str(&format!("; last error: {e}"));
            }
            println!("{line}");
        }
    }
    Ok(())
}

/// Each file a post's content names and where its uploads stand, for `show --json`: the
/// same as the text's `file` and `upload` lines.
fn media_json(store: &Store, content: &crate::content::Content) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for a in content.assets() {
        let uploads: Vec<serde_json::Value> = store
            .media_rows(&a.sha256)?
            .into_iter()
            .map(|r| {
                json!({
                    "owner": r.owner,
                    "status": r.status.as_str(),
                    "urn": r.urn,
                    "uploaded_at": r.uploaded_at,
                    "available_at": r.available_at,
                    "last_error": r.last_error,
                })
            })
            .collect();
        out.push(json!({
            "file": a.file,
            "kind": a.kind.as_str(),
            "bytes": a.bytes,
            "sha256": a.sha256,
            "alt": a.alt,
            "uploads": uploads,
        }));
    }
    Ok(out)
}

/// A first comment's state in words, for `show`.
fn comment_words(config: &Config, c: &Comment) -> String {
    let error = c.last_error.as_deref().unwrap_or("");
    let tries = c.attempts;
    match c.status {
        CommentStatus::Waiting => match (c.next_attempt_at, tries) {
            (Some(t), 0) => format!("waiting (due {})", local(config, t)),
            (Some(t), n) => format!(
                "waiting, next try {} after {n} tries: {error}",
                local(config, t)
            ),
            (None, _) => "waiting".into(),
        },
        CommentStatus::Sending => "sending".into(),
        CommentStatus::Posted => format!(
            "posted {}{}",
            local(config, c.updated_at),
            c.comment_urn
                .as_deref()
                .map(|u| format!(" as {u}"))
                .unwrap_or_default()
        ),
        CommentStatus::Refused => format!("refused ({error})"),
        CommentStatus::Dead => format!("dead after {tries} tries: {error}"),
    }
}

pub fn dead(config: &Config, store: &Store, as_json: bool) -> Result<()> {
    let letters = store.dead_letters()?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&letters)?);
        return Ok(());
    }
    if letters.is_empty() {
        println!("no dead letters");
        return Ok(());
    }
    for d in letters {
        let status = d
            .http_status
            .map(|s| format!("HTTP {s} "))
            .unwrap_or_default();
        println!(
            "{}  {}  ({})  reason: {}\n    {}{}",
            local(config, d.created_at),
            d.post_id,
            d.account,
            d.reason,
            status,
            d.message.as_deref().unwrap_or("")
        );
    }
    println!("\n`lipost retry ID` (or --all) sends again; `lipost cancel ID` withdraws.");
    println!("`in_doubt` and `duplicate` posts may already be on LinkedIn: check the feed, then `lipost mark-published ID URN`, or `lipost retry ID --force`.");
    Ok(())
}
