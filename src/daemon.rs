//! `lipost run`: wires the parts together and runs them until SIGTERM or SIGINT.
//!
//! Start-up order matters: the store opens (and posts left `publishing` by a dead process are
//! marked in doubt), the folder's existing drafts are taken, then the watcher and the
//! scheduler start. In sandbox mode with no `api_base_url`, the sandbox starts in-process.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Notify};
use tracing::{error, info, warn};

use crate::auth::Tokens;
use crate::config::{Config, Live, Mode};
use crate::linkedin::Client;
use crate::publisher::Publisher;
use crate::sandbox::{Sandbox, Settings};
use crate::scheduler::Scheduler;
use crate::store::{Handle, Store, StoreError};
use crate::watcher::{self, Intake, WatchError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("cannot start the built-in sandbox: {0}")]
    Sandbox(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Where the API is: the configured base, or a sandbox started here.
async fn api_base(config: &Config) -> Result<(String, String), DaemonError> {
    let l = &config.linkedin;
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

pub async fn run(config: Config) -> Result<(), DaemonError> {
    watcher::prepare_folders(&config)?;
    let path = config.database.clone();
    let store = Handle::new(
        tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??,
    );

    let recovered = store.call(|s| s.recover_interrupted(Utc::now())).await?;
    for id in &recovered {
        warn!(post_id = %id, "found in `publishing` at start-up: in doubt, will be resolved before any resend");
    }

    let (api, oauth) = api_base(&config).await?;
    let client = Client::new(
        &api,
        &oauth,
        &config.linkedin.version,
        config.linkedin.request_timeout,
    );
    let (config_tx, live) = Live::new(config);
    let config = live.get();
    let tokens = Arc::new(Tokens::new(live.clone(), client.clone(), store.clone()));
    let keeper_wake = Arc::new(Notify::new());
    tokio::spawn(tokens.clone().keep_alive(keeper_wake.clone()));
    let publisher = Arc::new(Publisher::new(live.clone(), store.clone(), client, tokens));

    // Watch first, then scan: a draft arriving between the two is seen by one or the other.
    let look = Arc::new(Notify::new());
    let intake = Intake::start(live.clone(), store.clone(), look.clone())?;
    let first = intake.scan().await?;
    info!(taken = first.taken, rejected = first.rejected, queue = %config.queue_dir.display(), database = %config.database.display(), "lipost is running");

    let (stop_tx, stop_rx) = watch::channel(false);
    let rearm = Arc::new(Notify::new());
    let wake =
        watcher::watch_wake_file(&config.database, vec![rearm.clone(), keeper_wake.clone()])?;
    crate::service::ready();
    let watching = tokio::spawn(watch_loop(
        intake,
        look.clone(),
        rearm.clone(),
        stop_rx.clone(),
        first.recheck_in,
    ));
    let reload = Reload {
        config: config_tx,
        wake: vec![rearm.clone(), keeper_wake, look],
    };
    tokio::spawn(signals(stop_tx, reload)?);

    let scheduler = Scheduler::new(live, store.clone(), publisher, rearm);
    let result = scheduler.run(stop_rx).await;
    drop(wake);
    watching.abort();
    info!("lipost stopped");
    result.map_err(DaemonError::from)
}

async fn watch_loop(
    intake: Intake,
    look: Arc<Notify>,
    rearm: Arc<Notify>,
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
                    rearm.notify_one();
                }
            }
            Err(e) => {
                error!(error = %e, "taking drafts failed; will look again");
                recheck = Some(std::time::Duration::from_secs(5));
            }
        }
    }
}

/// What SIGHUP needs: where to publish the new config, and whom to wake.
struct Reload {
    config: watch::Sender<Arc<Config>>,
    wake: Vec<Arc<Notify>>,
}

impl Reload {
    /// Re-reads config.toml; an invalid one is refused and the running one stays.
    fn apply(&self) {
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
                self.config.send_replace(Arc::new(new));
                self.wake.iter().for_each(|w| w.notify_one());
                info!(accounts = %accounts, "config reloaded");
            }
        }
        crate::service::ready();
    }
}

fn signals(
    stop: watch::Sender<bool>,
    reload: Reload,
) -> Result<impl std::future::Future<Output = ()>, DaemonError> {
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: finishing requests in flight, then stopping"); break; }
                _ = int.recv() => { info!("SIGINT: finishing requests in flight, then stopping"); break; }
                _ = hup.recv() => { info!("SIGHUP: reloading the config"); reload.apply(); }
            }
        }
        crate::service::stopping();
        let _ = stop.send(true);
    })
}
