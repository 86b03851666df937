//! `lipost run`: wires the parts together and runs them until SIGTERM or SIGINT.
//!
//! Start-up order matters: signal handlers first (a SIGHUP during start-up must not kill
//! the daemon), then the single-instance lock on the database file itself (an `flock`, held
//! until the process ends, so two daemons never share a database under any name; the pid
//! goes to `DATABASE-lock`), then the store opens and
//! must have been made for the configured mode (sandbox, or live against this API base);
//! posts left `publishing` by a dead process are marked in doubt and holds from the last run
//! are lifted. Then the folder's existing drafts are taken, and the watcher, the uploader
//! (media of posts due within `media.upload_ahead`), the scheduler and the first-comment
//! sender (`comments`, which first settles comments a dead process left `sending`) start.
//! In sandbox mode with no `api_base_url`, the sandbox starts in-process.
//! With `[metrics] listen`, the metrics endpoint starts once the store is open and migrated
//! (it reads the store through a read-only connection of its own).
//! SIGHUP reloads config.toml, `linkedin.version` included.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Notify};
use tracing::{error, info, warn};

use crate::auth::Tokens;
use crate::config::{Config, Live, Mode};
use crate::linkedin::{version_warning, ApiVersion, Client};
use crate::notify::{self, Routes};
use crate::post::HoldReason;
use crate::publisher::Publisher;
use crate::sandbox::{Sandbox, Settings};
use crate::scheduler::Scheduler;
use crate::store::{Handle, MadeFor, Store, StoreError};
use crate::uploader::Uploader;
use crate::watcher::{self, Intake, WatchError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("cannot start the built-in sandbox: {0}")]
    Sandbox(std::io::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("cannot start listening for other nodes: {0}")]
    Listen(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("another `lipost run` ({pid}) is using the database {database}: stop it first (two daemons on one database would resend each other's posts)")]
    Running { pid: String, database: String },
    #[error("cannot take the lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

/// `DATABASE-lock`: where the daemon using `database` writes its pid, for the refusal of a
/// second one. Not the lock itself (see [`lock_instance`]).
pub fn lock_file(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-lock");
    PathBuf::from(name)
}

/// Takes the single-instance lock: an `flock` on the database file itself, so every name
/// that reaches the same file (a symlink, a hard link, a bind mount, `..` in the path) meets
/// the same lock; a lock keyed on the path string let two daemons share one database. On
/// Linux `flock` does not interfere with SQLite's `fcntl` locks, and the descriptor stays
/// open for the life of the process (closing another descriptor of the database would drop
/// SQLite's own locks). Our pid goes into `DATABASE-lock` beside the canonical path, for
/// the message a second daemon prints. A killed daemon leaves nothing stale behind.
fn lock_instance(
    database: &Path,
) -> Result<fd_lock::RwLockWriteGuard<'static, std::fs::File>, DaemonError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| DaemonError::Lock { path, source }
    };
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed(dir))?;
    }
    // Created here as `Store::open` would (mode 0600), so there is a file to lock.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(database)
        .map_err(failed(database))?;
    let canonical = std::fs::canonicalize(database).map_err(failed(database))?;
    let pid_file = lock_file(&canonical);
    // Lives as long as the process: the guard must outlive every await in `run`.
    let lock: &'static mut fd_lock::RwLock<std::fs::File> =
        Box::leak(Box::new(fd_lock::RwLock::new(file)));
    match lock.try_write() {
        Ok(guard) => {
            let mut pid = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&pid_file)
                .map_err(failed(&pid_file))?;
            writeln!(pid, "{}", std::process::id()).map_err(failed(&pid_file))?;
            Ok(guard)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map_or_else(|| "pid unknown".to_string(), |p| format!("pid {p}"));
            Err(DaemonError::Running {
                pid,
                database: canonical.display().to_string(),
            })
        }
        Err(e) => Err(failed(database)(e)),
    }
}

/// Where the API is: the configured base, or a sandbox started here.
async fn api_base(config: &Config) -> Result<(String, String), DaemonError> {
    let l = &config.linkedin;
    if let Some(w) = crate::secret::client_secret_file_exposed(l) {
        warn!("{w}");
    }
    if let Some(api) = &l.api_base_url {
        let oauth = l
            .oauth_base_url
            .clone()
            .unwrap_or_else(|| format!("{api}/oauth/v2"));
        if l.mode == Mode::Sandbox {
            warn!(api = %api, "SANDBOX MODE: talking to a sandbox; nothing reaches LinkedIn");
        }
        return Ok((api.clone(), oauth));
    }
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let (local, _task) = Sandbox::new(Settings::default())
        .start(addr)
        .await
        .map_err(DaemonError::Sandbox)?;
    let api = format!("http://{local}");
    warn!(api = %api, "SANDBOX MODE: started the built-in LinkedIn sandbox; nothing reaches LinkedIn. Published posts: {api}/_sandbox/posts");
    Ok((api.clone(), format!("{api}/oauth/v2")))
}

/// This machine's name, for `lipost nodes`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// With PostgreSQL: renews this node's leases every third of `claim_lease`, and resolves
/// the posts of nodes whose leases ran out.
async fn heartbeat(live: Live, store: Handle, rearm: Arc<Notify>) {
    loop {
        let lease = live.get().publisher.claim_lease;
        tokio::time::sleep(lease / 3).await;
        if let Err(e) = store.call(|s| s.heartbeat()).await {
            warn!(error = %e, "cannot renew this node's leases; if it stays so, another node will resolve its posts in flight as in doubt");
            continue;
        }
        // A node killed before it sent a notification or a first comment it recorded tells
        // nobody: they look again every beat.
        notify::recorded().notify_one();
        crate::comments::wake().notify_one();
        let why = "the node that was sending it stopped answering (its lease ran out); it may have reached LinkedIn";
        match store
            .call(move |s| s.recover_expired(false, why, Utc::now()))
            .await
        {
            Ok(ids) if !ids.is_empty() => {
                for id in &ids {
                    warn!(post_id = %id, "its node's lease ran out while sending: in doubt, will be resolved before any resend");
                }
                rearm.notify_one();
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot look for posts of stopped nodes"),
        }
    }
}

pub async fn run(config: Config) -> Result<(), DaemonError> {
    let signals = Signals::install()?;
    let _instance = lock_instance(&config.database)?;
    watcher::prepare_folders(&config)?;
    let target = crate::store::Target::of(&config);
    let made_for = MadeFor::of(&config.linkedin);
    let node = crate::store::Node {
        id: config.node_id.clone(),
        lease: config.publisher.claim_lease,
    };
    let store = Handle::new(
        tokio::task::spawn_blocking(move || {
            let mut store = Store::connect(&target)?;
            store.join(node, &host_name(), Utc::now())?;
            store.check_made_for(&made_for, true)?;
            Ok::<_, StoreError>(store)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??,
    );
    // Their causes may be gone (a new version, a login while stopped): the scheduler holds
    // again whatever is still held.
    store.call(|s| s.lift_holds(None, Utc::now())).await?;
    // The pacing may have changed while stopped.
    store.call(|s| s.replan_pacing(Utc::now())).await?;

    let recovered = store.call(|s| s.recover_interrupted(Utc::now())).await?;
    for id in &recovered {
        warn!(post_id = %id, "found in `publishing` at start-up: in doubt, will be resolved before any resend");
    }

    if let Some(m) = &config.metrics {
        crate::metrics::serve(m.listen, crate::store::Target::of(&config)).await?;
    }

    let (api, oauth) = api_base(&config).await?;
    if config.linkedin.api_base_url.is_none() {
        // The built-in sandbox starts empty: last run's uploads are not on it.
        let n = store.call(|s| s.media_forget_uploads(Utc::now())).await?;
        if n > 0 {
            info!(assets = n, "the built-in sandbox starts empty: media uploaded to it last run will be uploaded again");
        }
    }
    let client = Client::new(
        &api,
        &oauth,
        &config.linkedin.version,
        config.linkedin.request_timeout,
    );
    let version = client.version().clone();
    let (config_tx, live) = Live::new(config);
    let config = live.get();
    tokio::spawn(warn_old_version(live.clone()));
    let routes = Routes::of(&config);
    store.call(move |s| s.set_notify_routes(&routes)).await?;
    tokio::spawn(notify::Sender::new(live.clone(), store.clone()).run());
    let tokens = Arc::new(Tokens::new(live.clone(), client.clone(), store.clone()));
    let keeper_wake = Arc::new(Notify::new());
    tokio::spawn(tokens.clone().keep_alive(keeper_wake.clone()));
    let social =
        crate::comments::Sender::new(live.clone(), store.clone(), client.clone(), tokens.clone());
    let uploader_client = client.clone();
    let uploader_tokens = tokens.clone();
    let media_wake = Arc::new(Notify::new());
    let publisher = Arc::new(
        Publisher::new(live.clone(), store.clone(), client, tokens)
            .with_media_wake(media_wake.clone()),
    );

    // Watch first, then scan: a draft arriving between the two is seen by one or the other.
    let look = Arc::new(Notify::new());
    let intake = Intake::start(live.clone(), store.clone(), look.clone())?;
    let first = intake.scan().await?;
    info!(taken = first.taken, rejected = first.rejected, queue = %config.queue_dir.display(), database = %crate::store::Target::of(&config), "lipost is running");

    let (stop_tx, stop_rx) = watch::channel(false);
    // Its own stop, sent once the scheduler is done (however it ended).
    let (social_stop, social_stop_rx) = watch::channel(false);
    let commenting = tokio::spawn(social.run(social_stop_rx));
    let rearm = Arc::new(Notify::new());
    let wake = watcher::watch_wake_file(
        &config.database,
        vec![rearm.clone(), keeper_wake.clone(), media_wake.clone()],
    )?;
    if let Some(url) = &config.database_url {
        // Other nodes' drafts and commands wake this one too.
        let (r, k, m) = (rearm.clone(), keeper_wake.clone(), media_wake.clone());
        crate::store::listen_for_nodes(url.clone(), move |what| {
            r.notify_one();
            m.notify_one();
            // Notifications and first comments another node recorded and did not send (it
            // stopped) are this node's to send.
            notify::recorded().notify_one();
            crate::comments::wake().notify_one();
            // The token keeper looks again only when a person changed something (a login
            // lifts `needs_reauth` holds); drafts arriving are not news to it.
            if what == crate::store::Wake::Changed {
                k.notify_one();
            }
        })
        .map_err(DaemonError::Listen)?;
        tokio::spawn(heartbeat(live.clone(), store.clone(), rearm.clone()));
    }
    crate::service::ready();
    let watching = tokio::spawn(watch_loop(
        intake,
        look.clone(),
        vec![rearm.clone(), media_wake.clone()],
        stop_rx.clone(),
        first.recheck_in,
    ));
    let uploader = tokio::spawn(
        Uploader::new(
            live.clone(),
            store.clone(),
            uploader_client,
            uploader_tokens,
            media_wake.clone(),
            rearm.clone(),
        )
        .run(stop_rx.clone()),
    );
    let reload = Reload {
        config: config_tx,
        version: version.clone(),
        store: store.clone(),
        wake: vec![rearm.clone(), keeper_wake, look, media_wake],
    };
    tokio::spawn(signals.handle(stop_tx, reload));

    let scheduler = Scheduler::new(live, store.clone(), publisher, rearm).with_api_version(version);
    let result = scheduler.run(stop_rx).await;
    // A first comment under way is let finish, so a stop does not leave it in doubt.
    let grace = live_grace(&config);
    let _ = social_stop.send(true);
    if tokio::time::timeout(grace, commenting).await.is_err() {
        warn!("a first comment or edit was still under way at shutdown; a comment left `sending` is reported at the next start, never resent");
    }
    drop(wake);
    watching.abort();
    // Uploads publish nothing: one cut short is redone at the next start.
    uploader.abort();
    info!("lipost stopped");
    result.map_err(DaemonError::from)
}

/// How long shutdown waits for the first-comment sender: its request's timeout, and a
/// little for the store.
fn live_grace(config: &Config) -> std::time::Duration {
    config.linkedin.request_timeout + std::time::Duration::from_secs(5)
}

async fn watch_loop(
    intake: Intake,
    look: Arc<Notify>,
    rearm: Vec<Arc<Notify>>,
    mut stop: watch::Receiver<bool>,
    mut recheck: Option<std::time::Duration>,
) {
    loop {
        let wait = recheck.map(|d| tokio::time::Instant::now() + d);
        tokio::select! {
            _ = look.notified() => {}
            _ = async { tokio::time::sleep_until(wait.expect("guarded")).await }, if wait.is_some() => {}
            _ = stop.changed() => return,
        }
        match intake.scan().await {
            Ok(scan) => {
                recheck = scan.recheck_in;
                if scan.taken > 0 {
                    rearm.iter().for_each(|r| r.notify_one());
                }
            }
            Err(e) => {
                error!(error = %e, "taking drafts failed; will look again");
                recheck = Some(std::time::Duration::from_secs(5));
            }
        }
    }
}

/// WARN when the configured `linkedin.version` nears retirement: at start, then daily.
async fn warn_old_version(live: crate::config::Live) {
    loop {
        if let Some(w) = version_warning(&live.get().linkedin.version, Utc::now()) {
            warn!("{w}");
        }
        tokio::time::sleep(std::time::Duration::from_secs(24 * 3600)).await;
    }
}

/// What SIGHUP needs: where to publish the new config, the API version to switch, the
/// store (to lift holds), and whom to wake.
struct Reload {
    config: watch::Sender<Arc<Config>>,
    version: ApiVersion,
    store: Handle,
    wake: Vec<Arc<Notify>>,
}

impl Reload {
    /// Re-reads config.toml; an invalid one is refused and the running one stays.
    async fn apply(&self) {
        crate::service::reloading();
        let current = self.config.borrow().clone();
        match Config::load(&current.path) {
            Err(e) => error!(error = %e, "config reload refused; the running config stays"),
            Ok(new) => {
                let (new, kept) = current.reloaded(new);
                if !kept.is_empty() {
                    warn!(keys = %kept.join(", "), "config reload: these keys need a restart and were not changed");
                }
                let accounts = new.accounts.keys().cloned().collect::<Vec<_>>().join(", ");
                let version = new.linkedin.version.clone();
                let (store, routes) = (self.store.clone(), Routes::of(&new));
                tokio::spawn(async move {
                    match store.call(move |s| s.set_notify_routes(&routes)).await {
                        Ok(()) => info!("config reload: [notify] events and sinks applied"),
                        Err(e) => {
                            error!(error = %e, "config reload: cannot apply the [notify] events and sinks")
                        }
                    }
                    notify::recorded().notify_one();
                });
                self.config.send_replace(Arc::new(new));
                if self.version.set(&version) {
                    info!(version = %version, "LinkedIn-Version set; posts held for a retired version are tried again");
                    let lifted = self
                        .store
                        .call(|s| s.lift_holds(Some(HoldReason::ApiVersionRetired), Utc::now()))
                        .await;
                    match lifted {
                        Ok(n) if n > 0 => info!(
                            posts = n,
                            "posts held for the retired API version are due again"
                        ),
                        Ok(_) => {}
                        Err(e) => {
                            error!(error = %e, "cannot lift the holds of the retired API version")
                        }
                    }
                }
                // A raised daily_cap or a shorter min_spacing applies to posts it holds now.
                match self.store.call(|s| s.replan_pacing(Utc::now())).await {
                    Ok(n) if n > 0 => info!(
                        posts = n,
                        "config reload: posts held by daily_cap or min_spacing are planned again with the new pacing"
                    ),
                    Ok(_) => {}
                    Err(e) => error!(error = %e, "config reload: cannot plan the paced posts again"),
                }
                self.wake.iter().for_each(|w| w.notify_one());
                // First comments and edits wait out a retired version too.
                crate::comments::wake().notify_one();
                info!(accounts = %accounts, "config reloaded");
            }
        }
        crate::service::ready();
    }
}

/// The signals `run` answers. Installed first thing: until then SIGHUP's default action
/// would end the process. One that arrives during start-up is taken once the loop runs.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(DaemonError::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?,
            hup: signal(SignalKind::hangup()).map_err(DaemonError::Signals)?,
        })
    }

    async fn handle(mut self, stop: watch::Sender<bool>, reload: Reload) {
        loop {
            tokio::select! {
                _ = self.term.recv() => { info!("SIGTERM: finishing requests in flight, then stopping"); break; }
                _ = self.int.recv() => { info!("SIGINT: finishing requests in flight, then stopping"); break; }
                _ = self.hup.recv() => { info!("SIGHUP: reloading the config"); reload.apply().await; }
            }
        }
        crate::service::stopping();
        let _ = stop.send(true);
    }
}
