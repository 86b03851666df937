//! `lipost auth login`, `lipost auth import` and `lipost doctor`.

use std::io::{BufRead, Read, Write};
use std::time::Duration;

use anyhow::{bail, Result};
use chrono::Utc;

use crate::auth::login::{self, Report};
use crate::auth::{app_credentials, scopes_for};
use crate::config::{Config, Mode};
use crate::linkedin::wire::TokenResponse;
use crate::linkedin::{ApiError, Client};
use crate::store::{Store, StoreError, TokenSource};

/// How long `login` waits for the browser.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);

/// The client for commands run outside the daemon. In sandbox mode this needs a running
/// sandbox (`api_base_url` set): the in-process one lives only inside `lipost run`.
pub fn client(config: &Config) -> Result<Client> {
    let Some(api) = config.linkedin.api_base_url.clone() else {
        bail!("linkedin.api_base_url is empty: in sandbox mode, start `lipost sandbox --listen 127.0.0.1:PORT` and set api_base_url to it (the daemon's built-in sandbox mints tokens by itself, no login needed)");
    };
    let oauth = config
        .linkedin
        .oauth_base_url
        .clone()
        .unwrap_or_else(|| format!("{api}/oauth/v2"));
    Ok(Client::new(
        &api,
        &oauth,
        &config.linkedin.version,
        config.linkedin.request_timeout,
    ))
}

fn print_report(report: &Report) -> Result<()> {
    for l in &report.lines {
        println!("{l}");
    }
    for w in &report.warnings {
        println!("WARNING: {w}");
    }
    for p in &report.problems {
        println!("PROBLEM: {p}");
    }
    if !report.problems.is_empty() {
        bail!("logged in, but the account cannot post yet (see above)");
    }
    Ok(())
}

pub async fn login(config: &Config, store: &mut Store, account: &str, paste: bool) -> Result<()> {
    let client = client(config)?;
    let member = login::member_of(config, account)?;
    if member != account {
        println!("account {account} posts with the token of member account {member}: logging in {member}");
    }
    let (url, state) = login::authorization_url(config, &client, &member)?;
    let scopes = scopes_for(config, &member).join(" ");
    let show = || {
        println!("Open this URL in a browser and allow lipost (scopes: {scopes}):");
        println!("{url}");
        let _ = std::io::stdout().flush();
    };
    let params = if paste {
        show();
        eprint!("Paste the full URL your browser landed on, then Enter: ");
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        login::parse_pasted(&line)?
    } else {
        let redirect = login::redirect_uri(config)?;
        login::listen_for_redirect(&redirect, LOGIN_TIMEOUT, || {
            show();
            open_browser(&url);
            println!("Waiting for the redirect to {redirect} ...");
            let _ = std::io::stdout().flush();
        })
        .await?
    };
    let report = login::finish(config, &client, store, &member, &state, &params).await?;
    print_report(&report)
}

/// Opens a browser where one is available; the printed URL works either way.
fn open_browser(url: &str) {
    let graphical =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if graphical {
        let _ = std::process::Command::new("xdg-open")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

/// Reads a token from stdin: a bare access token, or the token endpoint's JSON.
pub async fn import(
    config: &Config,
    store: &mut Store,
    account: &str,
    expires_in: Duration,
    refresh_expires_in: Option<Duration>,
) -> Result<()> {
    let client = client(config)?;
    let member = login::member_of(config, account)?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let input = input.trim();
    if input.is_empty() {
        bail!("no token on stdin: pipe the access token (or the token endpoint's JSON) into `lipost auth import`");
    }
    let resp = match serde_json::from_str::<TokenResponse>(input) {
        Ok(r) => r,
        Err(_) if input.starts_with('{') => {
            bail!("stdin looks like JSON but has no access_token and expires_in")
        }
        Err(_) => TokenResponse {
            access_token: crate::secret::Secret::new(
                input.lines().next().unwrap_or_default().trim(),
            ),
            expires_in: expires_in.as_secs() as i64,
            refresh_token: None,
            refresh_token_expires_in: refresh_expires_in.map(|d| d.as_secs() as i64),
            scope: String::new(),
            id_token: None,
        },
    };
    // A bare token does not say its scopes. Introspection is not asked (the notes leave its
    // answer unconfirmed, and not every app may call it): the scopes the account kind needs
    // are assumed, and a missing one shows as a 403 on the first post.
    let mut resp = resp;
    if resp.scope.is_empty() {
        resp.scope = scopes_for(config, &member).join(",");
    }
    let report = login::store_token(config, &client, store, &member, resp, TokenSource::Import)
        .await
        .map_err(|e| match e {
            login::LoginError::Api(ApiError::Status { status: 401, .. }) => {
                anyhow::anyhow!("LinkedIn refused this token (401 on userinfo): it is expired, revoked or mistyped")
            }
            other => other.into(),
        })?;
    print_report(&report)
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Doctor {
    worst: Level,
}

impl Doctor {
    fn line(&mut self, level: Level, what: impl AsRef<str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{tag}  {}", what.as_ref());
        self.worst = self.worst.max(level);
    }
}

/// The database: there, its schema version, and for PostgreSQL the server, whether the
/// connection is encrypted, and the nodes. Opened read-only: doctor creates and migrates
/// nothing. Returns the store when there is one this lipost can read.
fn check_database<'s>(
    config: &Config,
    store: &'s std::result::Result<Store, StoreError>,
    d: &mut Doctor,
) -> Result<Option<&'s Store>> {
    let target = crate::store::Target::of(config);
    let store = match store {
        Ok(s) => s,
        Err(StoreError::Missing { path }) => {
            let first = if config.database_url.is_some() {
                "`lipost migrate` makes its schema"
            } else {
                "`lipost run` (or `auth login`) creates it"
            };
            d.line(
                Level::Warn,
                format!("database {path}: not there yet; {first}. If it should exist, check `database` in the config"),
            );
            return Ok(None);
        }
        // SQLite: `lipost run` migrates its own file. PostgreSQL: a daemon refuses to, as other
        // nodes may use the schema, so nothing can post until someone migrates it.
        Err(
            StoreError::TooOld { found, known, .. } | StoreError::NeedsMigrate { found, known, .. },
        ) if config.database_url.is_some() => {
            d.line(Level::Fail, format!("database {target}: schema version {found}, older than this lipost ({known}): stop every lipost on it (or upgrade them together), then run `lipost migrate`"));
            return Ok(None);
        }
        Err(e @ StoreError::TooOld { .. }) => {
            d.line(Level::Warn, e.to_string());
            return Ok(None);
        }
        Err(e) => {
            d.line(Level::Fail, format!("database {target}: {e}"));
            return Ok(None);
        }
    };
    let (found, known) = store.schema_version()?;
    let schema = if found == known {
        Level::Ok
    } else {
        Level::Fail
    };
    d.line(
        schema,
        format!("database {target}: schema version {found} (this lipost: {known})"),
    );
    if let Some((version, tls)) = store.server()? {
        let local = config
            .database_url
            .as_ref()
            .is_some_and(|u| u.expose().contains("host=/") || u.expose().contains("@%2F"));
        let (level, words) = match (tls, local) {
            (true, _) => (Level::Ok, "encrypted (TLS)".to_string()),
            (false, true) => (Level::Ok, "over a Unix socket (no TLS needed)".to_string()),
            (false, false) => (
                Level::Warn,
                "NOT encrypted: add sslmode=require to the URL so posts and tokens do not cross the network in clear".to_string(),
            ),
        };
        d.line(level, format!("PostgreSQL {version}: connection {words}"));
        let nodes = store.nodes(config.publisher.claim_lease)?;
        let alive = nodes.iter().filter(|n| n.alive).count();
        d.line(
            Level::Ok,
            format!(
                "node_id {:?}; {alive} of {} nodes on this database alive (`lipost nodes`)",
                config.node_id,
                nodes.len()
            ),
        );
    }
    Ok(Some(store))
}

/// Walks the troubleshooting list; exits non-zero on any failure.
pub async fn doctor(config: &Config, store: std::result::Result<Store, StoreError>) -> Result<()> {
    let mut d = Doctor { worst: Level::Ok };
    d.line(
        Level::Ok,
        format!("config {} is valid", config.path.display()),
    );
    match app_credentials(config) {
        Ok((id, _)) => d.line(Level::Ok, format!("client id {id} and client secret present")),
        Err(e) => d.line(Level::Fail, format!("{e}: create an app at developer.linkedin.com and put its client id in the config, its secret in LIPOST_CLIENT_SECRET or client_secret_file")),
    }
    if let Some(warning) = crate::secret::client_secret_file_exposed(&config.linkedin) {
        d.line(Level::Warn, warning);
    }
    let (window, timeout) = (config.retry.resend_window, config.linkedin.request_timeout);
    if window <= timeout {
        d.line(Level::Warn, format!(
            "retry.resend_window ({}) is not longer than linkedin.request_timeout ({}): a resend must reach LinkedIn within the window, so a post in doubt is never sent again, only buried as in_doubt for you to check",
            crate::config::fmt_dur(window),
            crate::config::fmt_dur(timeout)
        ));
    }
    check_redirect(config, &mut d);
    let store = check_database(config, &store, &mut d)?;
    let client = client(config).ok();
    let tokens = match store {
        Some(s) => s.tokens()?,
        None => Vec::new(),
    };
    let now = Utc::now();
    let members: Vec<String> = config
        .accounts
        .values()
        .map(|a| a.token_account().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for member in &members {
        let Some(t) = tokens.iter().find(|t| &t.account == member) else {
            if config.linkedin.mode == Mode::Sandbox {
                d.line(Level::Warn, format!("account {member}: no token yet; in sandbox mode the daemon mints one at first use"));
            } else {
                d.line(
                    Level::Fail,
                    format!(
                        "account {member}: no token: run `lipost auth login --account {member}`"
                    ),
                );
            }
            continue;
        };
        if let Some(why) = &t.needs_reauth {
            d.line(Level::Fail, format!("account {member}: needs re-auth ({why}): run `lipost auth login --account {member}`"));
            continue;
        }
        let left = t.access_expires_at - now;
        let refresh = t.usable_refresh(now).is_some();
        if left <= chrono::Duration::zero() && !refresh {
            d.line(Level::Fail, format!("account {member}: access token expired {}: run `lipost auth login --account {member}`", t.access_expires_at.format("%Y-%m-%d")));
        } else if left <= chrono::Duration::days(14) && !refresh {
            d.line(Level::Warn, format!("account {member}: access token expires in {} days and cannot be refreshed: log in again before then", left.num_days()));
        } else {
            d.line(
                Level::Ok,
                format!(
                    "account {member}: token for {} valid until {}{}",
                    t.member_urn,
                    t.access_expires_at.format("%Y-%m-%d"),
                    if refresh { " (refreshable)" } else { "" }
                ),
            );
        }
        let missing = login::missing_scopes(config, t);
        if missing.is_empty() {
            d.line(
                Level::Ok,
                format!("account {member}: scopes {}", t.scopes.join(" ")),
            );
        }
        for m in missing {
            d.line(Level::Fail, m);
        }
        if let Some(client) = &client {
            let roles = login::check_roles(config, client, t).await;
            for warning in roles.warnings {
                d.line(Level::Warn, warning);
            }
            for problem in roles.problems {
                d.line(Level::Fail, problem);
            }
        }
    }
    match &client {
        Some(client) => check_api(client, tokens.first().map(|t| &t.access_token), config, &mut d).await,
        None => d.line(Level::Warn, "API not checked: api_base_url is empty (the built-in sandbox runs only inside `lipost run`)"),
    }
    if d.worst == Level::Fail {
        bail!("doctor found problems (FAIL lines above)");
    }
    Ok(())
}

fn check_redirect(config: &Config, d: &mut Doctor) {
    let Ok(redirect) = login::redirect_uri(config) else {
        d.line(Level::Fail, "linkedin.redirect_uri is not set: register http://127.0.0.1:8765/callback (or similar) with your app and set it");
        return;
    };
    match url::Url::parse(&redirect) {
        Err(e) => d.line(Level::Fail, format!("redirect_uri {redirect:?} is not a URL ({e})")),
        Ok(u) if u.scheme() == "http" && crate::config::is_loopback_url(&u) => {
            d.line(Level::Ok, format!("redirect_uri {redirect} is a loopback address lipost can listen on; it must match the app's registered one exactly"))
        }
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => d.line(
            Level::Warn,
            format!("redirect_uri {redirect} is not a loopback http:// address: `auth login` cannot listen there, use `auth login --paste`"),
        ),
        Ok(_) => d.line(Level::Fail, format!("redirect_uri {redirect} must be an http(s) URL")),
    }
}

async fn check_api(
    client: &Client,
    token: Option<&crate::secret::Secret>,
    config: &Config,
    d: &mut Doctor,
) {
    let fallback = crate::secret::Secret::new("lipost-doctor-no-token");
    let token = token.unwrap_or(&fallback);
    match client.organization_acls(token).await {
        Err(ApiError::NotSent { detail, .. }) | Err(ApiError::NoAnswer { detail, .. }) => d.line(
            Level::Fail,
            format!("API {} is not reachable: {detail}", client.api_base()),
        ),
        Err(ApiError::Status {
            status: 426,
            message,
            ..
        }) => {
            d.line(Level::Ok, format!("API {} reachable", client.api_base()));
            d.line(Level::Fail, format!("LinkedIn-Version {} is not accepted ({message}): set linkedin.version to a recent month (YYYYMM)", config.linkedin.version));
        }
        Ok(_) => {
            d.line(Level::Ok, format!("API {} reachable", client.api_base()));
            d.line(
                Level::Ok,
                format!("LinkedIn-Version {} accepted", config.linkedin.version),
            );
        }
        Err(e) => {
            // Refused for another reason (no token yet, a missing scope): LinkedIn may check
            // that before the version, so the version is neither confirmed nor refused.
            d.line(Level::Ok, format!("API {} reachable", client.api_base()));
            d.line(
                Level::Warn,
                format!(
                    "LinkedIn-Version {} not confirmed: the check was refused for another reason ({e}); after `lipost auth login`, run doctor again",
                    config.linkedin.version
                ),
            );
        }
    }
    if let Some(w) = crate::linkedin::version_warning(&config.linkedin.version, Utc::now()) {
        d.line(Level::Warn, w);
    }
}
