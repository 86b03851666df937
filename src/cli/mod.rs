//! The command line: clap definitions and one function per subcommand.
//!
//! Commands that read state open the store themselves, read-only (WAL lets them run beside
//! the daemon), and print; they never talk to LinkedIn. Of the commands that write, only
//! `auth`, `doctor`, `notify test` and `delete` talk to the outside. Errors go up as `anyhow` to `main`.

mod agenda;
mod auth;
mod delete;
mod report;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config};
use crate::post::{DeadReason, PostState};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "lipost",
    version,
    about = "Publishes scheduled LinkedIn posts, exactly once."
)]
pub struct Cli {
    /// Config file [default: ./config.toml, then /etc/lipost/config.toml]
    #[arg(long, global = true, env = "LIPOST_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: watch the queue folder and publish posts when due.
    Run,
    /// Run the LinkedIn sandbox on its own (for tests and trying things out).
    Sandbox {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: SocketAddr,
        /// LinkedIn's duplicate-content window.
        #[arg(long, default_value = "10m", value_parser = config::parse_duration)]
        duplicate_window: std::time::Duration,
        /// Added to every answer of a LinkedIn endpoint.
        #[arg(long, default_value = "0s", value_parser = config::parse_duration)]
        latency: std::time::Duration,
    },
    /// Validate the config and print it resolved (secrets masked).
    CheckConfig,
    /// Check draft files and bundle folders without queuing them (nothing is copied); print
    /// the exact commentary that would be sent.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Counts per state, the next due posts and the latest failures.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// List posts.
    List {
        #[arg(long, value_parser = parse_state)]
        state: Option<PostState>,
        #[arg(long)]
        json: bool,
    },
    /// What goes out when: the coming days in `timezone`, with slots, holds and daily caps.
    Agenda {
        /// How many days to show (at most 92).
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// The first day, YYYY-MM-DD in `timezone` [default: today].
        #[arg(long, value_parser = parse_date)]
        from: Option<chrono::NaiveDate>,
        #[arg(long)]
        json: bool,
    },
    /// One post with all its attempts.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a scheduled or dead post.
    Cancel {
        id: String,
        /// Withdraw a post that may already be on LinkedIn (a try in doubt) without looking.
        #[arg(long)]
        force: bool,
    },
    /// List dead letters: posts given up, with the reason and the last error.
    Dead {
        #[arg(long)]
        json: bool,
    },
    /// Put a dead post back to `scheduled` with a fresh attempt budget.
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead post, except those that may already be on LinkedIn (`in_doubt`,
        /// `duplicate`).
        #[arg(long)]
        all: bool,
        /// With --all: those that may already be on LinkedIn too.
        #[arg(long, requires = "all")]
        include_in_doubt: bool,
        /// Send a post that may already be on LinkedIn anyway (it may then be there twice).
        #[arg(long, conflicts_with = "all")]
        force: bool,
    },
    /// Record a post found on LinkedIn by hand as published with that URN.
    MarkPublished { id: String, urn: String },
    /// Delete a published post on LinkedIn; it is then `deleted`. Again is fine.
    Delete { id: String },
    /// Log in, or import a token.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Notifications ([notify] in the config).
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Check config, credentials, tokens, scopes, page roles, the API and its version.
    Doctor,
    /// The daemons sharing a PostgreSQL database: id, host, last heartbeat, posts in flight.
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// Write every row of the database (posts, attempts, dead letters, tokens, media rows,
    /// comments, edits, notifications) to FILE, created mode 0600: it holds tokens. With
    /// `import`, moves a schedule between SQLite and PostgreSQL. Stop the daemon first.
    Export { file: std::path::PathBuf },
    /// Read an export into the configured database, which must hold no posts.
    Import { file: std::path::PathBuf },
    /// Bring the database schema up to date. A daemon migrates a SQLite file (and creates an
    /// empty PostgreSQL schema) by itself; a PostgreSQL schema other nodes may use is
    /// upgraded only here: stop the nodes, migrate, start the new version.
    Migrate,
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
    /// Internal: counts the pages of the PDF on standard input, in a child process whose
    /// memory and CPU time the daemon caps (see `media::pdf`).
    #[command(hide = true)]
    InspectPdf,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Record a `test` event and send it to every configured sink now; fails if one fails.
    Test,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// LinkedIn's authorization-code flow in a browser.
    Login {
        #[arg(long)]
        account: String,
        /// No local listener: paste the URL the browser landed on (servers without a browser).
        #[arg(long)]
        paste: bool,
    },
    /// Store a token made elsewhere (e.g. LinkedIn's token generator), read from stdin:
    /// the bare access token, or the token endpoint's JSON.
    Import {
        #[arg(long)]
        account: String,
        /// Lifetime of a bare access token.
        #[arg(long, default_value = "60d", value_parser = config::parse_duration)]
        expires_in: std::time::Duration,
        /// Lifetime of the refresh token, when the JSON has one without it.
        #[arg(long, value_parser = config::parse_duration)]
        refresh_expires_in: Option<std::time::Duration>,
    },
}

fn parse_state(s: &str) -> Result<PostState, String> {
    PostState::parse(s).ok_or_else(|| {
        let all: Vec<&str> = PostState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state {s:?}; one of {}", all.join(", "))
    })
}

fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("{s:?}: {e}; write a date as YYYY-MM-DD, e.g. 2027-10-31"))
}

fn load(cli: &Cli) -> Result<Config> {
    let path = config::locate(cli.config.as_deref())?;
    let config = Config::load(&path)?;
    if let Some(w) = config.linkedin.unsafe_endpoint_warning() {
        tracing::warn!("{w}");
    }
    Ok(config)
}

fn open_store(config: &Config) -> Result<Store> {
    let target = crate::store::Target::of(config);
    Store::connect(&target).with_context(|| format!("opening {target}"))
}

/// For commands whose work goes out (tokens, retries): the database must have been made for
/// the configured mode, like `lipost run` checks. An unmarked one is marked here too: a login
/// into an empty database belongs to the configured world, and its tokens may not tell which.
fn open_store_to_send(config: &Config) -> Result<Store> {
    let mut store = open_store(config)?;
    store.check_made_for(&crate::store::MadeFor::of(&config.linkedin), true)?;
    Ok(store)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Sandbox {
            listen,
            duplicate_window,
            latency,
        } => {
            let settings = crate::sandbox::Settings {
                duplicate_window: *duplicate_window,
                latency: *latency,
                ..Default::default()
            };
            let (addr, task) = crate::sandbox::Sandbox::new(settings)
                .start(*listen)
                .await?;
            println!("lipost sandbox listening on http://{addr}");
            use std::io::Write;
            std::io::stdout().flush()?;
            tracing::warn!(addr = %addr, "LinkedIn sandbox running; nothing here reaches LinkedIn");
            tokio::select! {
                _ = task => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(())
        }
        Command::Run => {
            let config = load(&cli)?;
            crate::daemon::run(config).await?;
            Ok(())
        }
        Command::CheckConfig => {
            let config = load(&cli)?;
            print!("{config}");
            println!("config ok");
            Ok(())
        }
        Command::Validate { files } => validate(&load(&cli)?, files),
        Command::Status { json } => read(&cli, |c, s| report::status(c, s, *json)),
        Command::List { state, json } => read(&cli, |c, s| report::list(c, s, *state, *json)),
        Command::Agenda {
            days,
            account,
            from,
            json,
        } => read(&cli, |c, s| {
            let args = agenda::Args {
                days: *days,
                account: account.as_deref(),
                from: *from,
                json: *json,
            };
            agenda::agenda(c, s, args)
        }),
        Command::Show { id, json } => read(&cli, |c, s| report::show(c, s, id, *json)),
        Command::Dead { json } => read(&cli, |c, s| report::dead(c, s, *json)),
        Command::Cancel { id, force } => {
            let config = load(&cli)?;
            open_store(&config)?.cancel(id, *force, Utc::now())?;
            wake_daemon(&config);
            println!("cancelled {id}");
            Ok(())
        }
        Command::Retry {
            id,
            all,
            include_in_doubt,
            force,
        } => {
            let config = load(&cli)?;
            let mut store = open_store_to_send(&config)?;
            let ids = if *all {
                store.dead_ids()?
            } else {
                let id = id.clone().expect("clap requires it");
                if let Some(reason) = store.may_be_live(&id)?.filter(|_| !*force) {
                    bail!(
                        "{id} is dead as {reason}: it may already be on LinkedIn, and sending it again may post it twice.\n\
                         Check the feed first. If it is there: `lipost mark-published {id} URN`.\n\
                         If it is not: `lipost retry {id} --force`."
                    );
                }
                vec![id]
            };
            if ids.is_empty() {
                println!("no dead posts");
            }
            let mut skipped: Vec<(String, DeadReason)> = Vec::new();
            let mut partial: Vec<String> = Vec::new();
            let mut failed = 0;
            for id in ids {
                if *all && !*include_in_doubt {
                    if let Some(reason) = store.may_be_live(&id)? {
                        skipped.push((id, reason));
                        continue;
                    }
                }
                // Its text may be only the first part of what its author wrote, or its author
                // may have withdrawn it: one at a time, asked for by name.
                if *all
                    && matches!(
                        store.dead_reason(&id)?,
                        Some(DeadReason::DraftIncomplete | DeadReason::DraftWithdrawn)
                    )
                {
                    partial.push(id);
                    continue;
                }
                let now = Utc::now();
                let due = match store.requeue(&id, now) {
                    Ok(due) => due,
                    // One post that cannot go back does not stop `--all` for the others.
                    Err(e) if *all => {
                        println!("not requeued {id}: {e}");
                        failed += 1;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                if due.as_str() > &*crate::store::ts(now) {
                    println!("requeued {id}: scheduled for {due} (its due time) with a fresh attempt budget");
                } else {
                    println!("requeued {id}: scheduled now with a fresh attempt budget");
                }
            }
            if !partial.is_empty() {
                println!(
                    "skipped {} whose draft file was written to again after it was taken (draft_incomplete: the text may be only a first part) or left the queue folder while it was taken (draft_withdrawn):",
                    partial.len()
                );
                for id in &partial {
                    println!("  {id}");
                }
                println!("drop the whole draft again, or `lipost retry ID` to send the text as it was taken");
            }
            if !skipped.is_empty() {
                println!(
                    "skipped {} that may already be on LinkedIn (sending again may post them twice):",
                    skipped.len()
                );
                for (id, reason) in &skipped {
                    println!("  {id}  ({reason})");
                }
                println!("check the feed: `lipost mark-published ID URN` for those there, `lipost retry ID --force` (or `retry --all --include-in-doubt`) for those not");
            }
            wake_daemon(&config);
            if failed > 0 {
                bail!("{failed} dead posts could not be requeued (see above)");
            }
            Ok(())
        }
        Command::Auth(AuthCommand::Login { account, paste }) => {
            let config = load(&cli)?;
            let mut store = open_store_to_send(&config)?;
            auth::login(&config, &mut store, account, *paste).await
        }
        Command::Auth(AuthCommand::Import {
            account,
            expires_in,
            refresh_expires_in,
        }) => {
            let config = load(&cli)?;
            let mut store = open_store_to_send(&config)?;
            auth::import(
                &config,
                &mut store,
                account,
                *expires_in,
                *refresh_expires_in,
            )
            .await
        }
        Command::Notify(NotifyCommand::Test) => {
            let config = load(&cli)?;
            if config.notify.sinks().is_empty() {
                bail!(
                    "no notification sink configured: set notify.command or notify.webhook in {}",
                    config.path.display()
                );
            }
            let mut store = open_store(&config)?;
            let results = crate::notify::test(&config, &mut store).await?;
            let mut failed = 0;
            for (sink, r) in &results {
                match r {
                    Ok(()) => println!("{sink}: ok"),
                    Err(e) => {
                        failed += 1;
                        println!("{sink}: failed: {e}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} sinks failed", results.len());
            }
            Ok(())
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "lipost", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(())
        }
        Command::InspectPdf => {
            // Run by `main` before any runtime starts; here only if called some other way.
            match crate::media::pdf::inspect_stdin() {
                0 => Ok(()),
                _ => bail!("cannot read the PDF on standard input"),
            }
        }
        Command::Nodes { json } => read(&cli, |config, store| report::nodes(config, store, *json)),
        Command::Export { file } => {
            let config = load(&cli)?;
            let target = crate::store::Target::of(&config);
            let mut store = Store::connect_read_only(&target)?;
            let out = {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(file)
                    .with_context(|| {
                        format!("creating {} (it must not exist yet)", file.display())
                    })?
            };
            let mut out = std::io::BufWriter::new(out);
            let counts = store.export(&mut out)?;
            out.into_inner()
                .map_err(|e| anyhow::anyhow!("writing {}: {}", file.display(), e.error()))?
                .sync_all()?;
            report_counts("exported from", &target, &counts);
            Ok(())
        }
        Command::Import { file } => {
            let config = load(&cli)?;
            let target = crate::store::Target::of(&config);
            let input =
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            let mut store = Store::connect(&target)?;
            let counts = store.import(std::io::BufReader::new(input))?;
            report_counts("imported into", &target, &counts);
            Ok(())
        }
        Command::Migrate => {
            let config = load(&cli)?;
            let target = crate::store::Target::of(&config);
            let (was, now) =
                Store::migrate(&target).with_context(|| format!("migrating {target}"))?;
            if was == now {
                println!("{target}: schema version {now}, up to date");
            } else {
                println!("{target}: schema version {was} -> {now}");
            }
            Ok(())
        }
        Command::Doctor => {
            let config = load(&cli)?;
            // Looks only: a mistyped path must not pass as a new, empty database.
            let store = Store::connect_read_only(&crate::store::Target::of(&config));
            auth::doctor(&config, store).await
        }
        Command::Delete { id } => {
            let config = load(&cli)?;
            let store = open_store_to_send(&config)?;
            delete::delete(&config, store, id).await?;
            wake_daemon(&config);
            Ok(())
        }
        Command::MarkPublished { id, urn } => {
            if !(urn.starts_with("urn:li:share:") || urn.starts_with("urn:li:ugcPost:")) {
                bail!("{urn:?} is not a post URN (urn:li:share:… or urn:li:ugcPost:…)");
            }
            let config = load(&cli)?;
            open_store(&config)?.mark_published(id, urn, Utc::now())?;
            wake_daemon(&config);
            println!("{id} recorded as published: {urn}");
            Ok(())
        }
    }
}

/// A read-only command: the config, loaded once, and the store opened read-only (nothing
/// created, nothing migrated).
fn read(cli: &Cli, f: impl FnOnce(&Config, &Store) -> Result<()>) -> Result<()> {
    let config = load(cli)?;
    let store = Store::connect_read_only(&crate::store::Target::of(&config))?;
    f(&config, &store)
}

/// Lets a running daemon know the schedule changed.
fn report_counts(what: &str, target: &crate::store::Target, counts: &[(String, usize)]) {
    let list: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    println!("{what} {target}: {}", list.join(", "));
}

fn wake_daemon(config: &Config) {
    if config.database_url.is_some() {
        // Every node, through the database; a local daemon also through its wake file.
        let target = crate::store::Target::of(config);
        if let Err(e) = Store::connect_read_only(&target).and_then(|s| s.announce()) {
            eprintln!("note: could not wake the daemons ({e}); they will notice the change at their next wake-up");
        }
        if config.data_dir().is_dir() {
            let _ = crate::store::poke(&config.database);
        }
        return;
    }
    if let Err(e) = crate::store::poke(&config.database) {
        eprintln!(
            "note: could not wake the daemon ({e}); it will notice the change at its next wake-up"
        );
    }
}

fn print_valid(config: &Config, file: &std::path::Path, d: &crate::draft::Draft) {
    let when = d.publish_at.map_or_else(
        || "as soon as possible".to_string(),
        |t| t.with_timezone(&config.timezone).to_rfc3339(),
    );
    println!("{}: ok", file.display());
    println!("  id          {}", d.id);
    println!("  account     {}", d.account);
    println!("  publish_at  {when}");
    println!("  visibility  {}", d.visibility.as_str());
    if let Some(c) = &d.content {
        println!(
            "  content     {}",
            serde_json::to_string(c).expect("content serializes")
        );
    }
    if let Some(c) = &d.first_comment {
        println!("  first_comment {c:?}");
    }
    if d.edit {
        println!("  edit        true");
    }
    println!(
        "  commentary ({} characters):",
        crate::draft::commentary_length(&d.commentary)
    );
    println!("{}", d.commentary);
}

fn validate(config: &Config, files: &[PathBuf]) -> Result<()> {
    let mut failed = 0;
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(why) = crate::watcher::name_refusal(file) {
            failed += 1;
            println!("{}: rejected: {why}", file.display());
            continue;
        }
        // A folder is a bundle (a link to one is refused there, as the daemon does), unless
        // it is named like a draft file: the daemon refuses that as a folder.
        let named_like_draft = crate::watcher::classify(&name, &config.watcher.extensions)
            != crate::watcher::NameKind::Other;
        if std::fs::metadata(file).is_ok_and(|m| m.is_dir()) && !named_like_draft {
            let kind = crate::watcher::classify_folder(&name);
            if kind != crate::watcher::NameKind::Draft {
                failed += 1;
                println!(
                    "{}: not a bundle: {}; the daemon would leave it alone",
                    file.display(),
                    kind.why_not_a_draft()
                );
                continue;
            }
            match crate::watcher::validate_bundle(file, config) {
                Ok((d, found)) => {
                    print_valid(config, file, &d);
                    for f in found {
                        println!("  file        {f}");
                    }
                }
                Err(why) => {
                    failed += 1;
                    println!("{}: rejected: {why}", file.display());
                }
            }
            continue;
        }
        match crate::watcher::classify(&name, &config.watcher.extensions) {
            crate::watcher::NameKind::Draft => {}
            kind => {
                failed += 1;
                let why = kind.why_not_a_draft();
                println!(
                    "{}: not a draft: {why}; the daemon would leave it alone",
                    file.display()
                );
                continue;
            }
        }
        // The same checks the daemon makes: no links followed, a regular file, the size cap.
        let cap = config.watcher.max_draft_size;
        let read = crate::watcher::open_draft(file, cap)
            .and_then(|(f, _)| crate::watcher::read_capped(&f, cap))
            .map_err(|e| e.to_string());
        let bytes = match read {
            Ok(b) => b,
            Err(why) => {
                failed += 1;
                println!("{}: rejected: {why}", file.display());
                continue;
            }
        };
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match crate::draft::parse(&bytes, &stem, config) {
            Ok(d) => print_valid(config, file, &d),
            Err(e) => {
                failed += 1;
                println!("{}: rejected: {e}", file.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} drafts rejected", files.len());
    }
    Ok(())
}
