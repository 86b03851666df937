//! The queue folder: finds draft files, takes them once complete, and moves them out.
//!
//! The folder scan is the truth; notify events only say "look now" (a lost or overflowed
//! event costs nothing but a later look). A file is read only once its mtime is older than
//! `settle_time`, and is re-checked after reading, so a file still being written in place is
//! never taken half-written. A draft is moved to `accepted/` only after the store committed
//! it, and taking is idempotent (the same draft again is `Unchanged`), so a crash between the
//! two neither loses nor duplicates it. This module never schedules or sends anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::{Config, Live};
use crate::draft::{self, Draft};
use crate::store::{self, Handle, Taken};

/// How many drafts go into the store in one transaction.
const BATCH: usize = 500;

/// How many upcoming slots a `next-slot` draft may choose from.
const SLOT_LOOKAHEAD: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot create {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch {path}: {detail}")]
    Watch { path: PathBuf, detail: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Names writers use while staging: never taken.
pub fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with(".swp")
        || name.ends_with('~')
}

/// Keeps notify's watcher alive; dropping it stops the events.
pub struct Events {
    _watcher: Box<dyn notify::Watcher + Send>,
}

/// Files renamed into the folder: complete already (the stage-and-rename pattern), so they
/// need not wait for the settle time. A hint from notify; the scan still decides.
pub type RenamedIn = Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>;

/// Starts watching the queue folder; every event wakes `look`.
pub fn watch(config: &Config, look: Arc<Notify>, renamed: RenamedIn) -> Result<Events, WatchError> {
    let dir = config.queue_dir.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
        match res {
            // Reading the folder (our own scans) reports access events: looking again on
            // those would loop forever. Only a close after writing says something new.
            Ok(e) if matches!(e.kind, EventKind::Access(k) if k != AccessKind::Close(AccessMode::Write)) => {
                return
            }
            Ok(e) => {
                let target = match e.kind {
                    EventKind::Modify(ModifyKind::Name(RenameMode::To)) => e.paths.first(),
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => e.paths.get(1),
                    _ => None,
                };
                if let Some(p) = target {
                    renamed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(p.clone());
                }
            }
            Err(e) => {
                warn!(error = %e, "file watcher reported an error; rescanning the queue folder")
            }
        }
        look.notify_one();
    };
    let watch_err = |e: notify::Error| {
        let mut detail = e.to_string();
        if detail.contains("No space left on device") || detail.contains("os error 28") {
            detail.push_str(
                " (the inotify watch limit is reached: raise fs.inotify.max_user_watches, or set watcher.poll = true)",
            );
        }
        WatchError::Watch {
            path: dir.clone(),
            detail,
        }
    };
    let mut watcher: Box<dyn notify::Watcher + Send> = if config.watcher.poll {
        let cfg = notify::Config::default().with_poll_interval(config.watcher.poll_interval);
        Box::new(notify::PollWatcher::new(handler, cfg).map_err(watch_err)?)
    } else {
        Box::new(notify::recommended_watcher(handler).map_err(watch_err)?)
    };
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(watch_err)?;
    Ok(Events { _watcher: watcher })
}

/// Wakes everyone in `wake` whenever another process pokes the database's wake file
/// (see [`store::poke`]). The file itself is watched, not its folder: the folder also
/// holds the database, whose every write would otherwise wake the watcher thread.
pub fn watch_wake_file(database: &Path, wake: Vec<Arc<Notify>>) -> Result<Events, WatchError> {
    let file = store::wake_file(database);
    let watch_err = |detail: String| WatchError::Watch {
        path: file.clone(),
        detail,
    };
    // Created here, so there is something to watch before any command pokes it.
    store::create_wake_file(database).map_err(|e| watch_err(e.to_string()))?;
    let shown = file.display().to_string();
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(e) if e.kind.is_remove() => warn!(
            file = %shown,
            "the wake file was removed; until a restart, commands such as `lipost retry` take effect at the next scheduled wake-up"
        ),
        Ok(_) => wake.iter().for_each(|w| w.notify_one()),
        Err(_) => {}
    };
    let mut watcher = notify::recommended_watcher(handler).map_err(|e| watch_err(e.to_string()))?;
    notify::Watcher::watch(&mut watcher, &file, notify::RecursiveMode::NonRecursive)
        .map_err(|e| watch_err(e.to_string()))?;
    Ok(Events {
        _watcher: Box::new(watcher),
    })
}

/// Creates the queue folder and its `accepted/` and `rejected/` beside the drafts.
pub fn prepare_folders(config: &Config) -> Result<(), WatchError> {
    for dir in [
        config.queue_dir.clone(),
        config.accepted_dir(),
        config.rejected_dir(),
    ] {
        std::fs::create_dir_all(&dir).map_err(|source| WatchError::Folder { path: dir, source })?;
    }
    Ok(())
}

/// A file seen in the folder but not yet complete.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: SystemTime,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    m.is_file().then(|| Stamp {
        len: m.len(),
        mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    })
}

/// Takes drafts from the folder into the store.
pub struct Intake {
    config: Live,
    store: Handle,
    renamed: RenamedIn,
}

/// What one scan did, and when to look again for files not yet settled.
#[derive(Debug, Default)]
pub struct Scan {
    pub taken: usize,
    pub rejected: usize,
    pub recheck_in: Option<Duration>,
}

enum Read {
    Ready(Draft),
    Bad(String),
    Changed,
}

impl Intake {
    pub fn new(config: Live, store: Handle, renamed: RenamedIn) -> Intake {
        Intake {
            config,
            store,
            renamed,
        }
    }

    /// One full look at the folder: takes every complete draft.
    pub async fn scan(&self) -> Result<Scan, WatchError> {
        let config = self.config.get().clone();
        let renamed: std::collections::HashSet<PathBuf> =
            std::mem::take(&mut *self.renamed.lock().unwrap_or_else(|p| p.into_inner()));
        let (ready, recheck_in) =
            tokio::task::spawn_blocking(move || settled_files(&config, &renamed))
                .await
                .map_err(|e| store::StoreError::Task(e.to_string()))?;
        let mut scan = Scan {
            recheck_in,
            ..Scan::default()
        };
        for chunk in ready.chunks(BATCH) {
            let (taken, rejected, changed) = self.take(chunk.to_vec()).await?;
            scan.taken += taken;
            scan.rejected += rejected;
            if changed {
                let settle = self.config.get().watcher.settle_time;
                scan.recheck_in = Some(scan.recheck_in.map_or(settle, |r| r.min(settle)));
            }
        }
        Ok(scan)
    }

    /// Reads, parses, stores and moves a batch of settled files.
    async fn take(&self, files: Vec<PathBuf>) -> Result<(usize, usize, bool), WatchError> {
        let config = self.config.get().clone();
        let read: Vec<(PathBuf, Read)> = tokio::task::spawn_blocking(move || {
            files
                .into_iter()
                .map(|p| {
                    let r = read_draft(&p, &config);
                    (p, r)
                })
                .collect()
        })
        .await
        .map_err(|e| store::StoreError::Task(e.to_string()))?;

        let changed = read.iter().any(|(_, r)| matches!(r, Read::Changed));
        let mut good: Vec<(PathBuf, Draft)> = Vec::new();
        let mut bad: Vec<(PathBuf, String)> = Vec::new();
        for (p, r) in read {
            match r {
                Read::Ready(d) => good.push((p, d)),
                Read::Bad(why) => bad.push((p, why)),
                Read::Changed => {}
            }
        }
        let config = self.config.get();
        let now = Utc::now();
        let slots: Vec<Vec<chrono::DateTime<Utc>>> = good
            .iter()
            .map(|(_, d)| match config.account(&d.account) {
                Some(a) if d.next_slot => {
                    crate::slots::upcoming(&a.slots, config.timezone, now, SLOT_LOOKAHEAD)
                }
                _ => Vec::new(),
            })
            .collect();
        // The batch goes into the store call and comes back with the results: no copy.
        let (good, results) = self
            .store
            .call(move |s| {
                let names: Vec<String> = good.iter().map(|(p, _)| file_name(p)).collect();
                let intakes: Vec<store::NewPost<'_>> = good
                    .iter()
                    .zip(&names)
                    .zip(&slots)
                    .map(|(((_, d), n), sl)| store::NewPost {
                        draft: d,
                        source_file: n,
                        slots: sl,
                    })
                    .collect();
                let results = s.ingest(&intakes, Utc::now())?;
                drop(intakes);
                Ok((good, results))
            })
            .await?;

        let config = self.config.get().clone();
        let (taken, rejected) = tokio::task::spawn_blocking(move || {
            let mut taken = 0;
            for ((path, d), result) in good.iter().zip(results) {
                match result {
                    Ok(how) => {
                        taken += 1;
                        log_taken(d, &how, path);
                        move_to(path, &config.accepted_dir(), None);
                    }
                    Err(refused) => bad.push((path.clone(), refused.to_string())),
                }
            }
            for (path, why) in &bad {
                warn!(file = %file_name(path), reason = %why, "draft rejected");
                move_to(path, &config.rejected_dir(), Some(why));
            }
            (taken, bad.len())
        })
        .await
        .map_err(|e| store::StoreError::Task(e.to_string()))?;
        Ok((taken, rejected, changed))
    }
}

fn log_taken(d: &Draft, how: &Taken, path: &Path) {
    let due = match (d.publish_at, d.next_slot) {
        (Some(t), _) => t.to_rfc3339(),
        (None, true) => "the next free slot (see `lipost list`)".to_string(),
        (None, false) => "as soon as possible".to_string(),
    };
    let what = match how {
        Taken::Created => "draft scheduled",
        Taken::Replaced => "draft replaced the scheduled post",
        Taken::Unchanged => "draft already taken; unchanged",
    };
    info!(post_id = %d.id, account = %d.account, state = "scheduled", due = %due, file = %file_name(path), "{what}");
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The folder's complete drafts (sorted by name), and how long until an incomplete one may be.
/// A file is complete when its mtime is older than the settle time, or when it was renamed in.
fn settled_files(
    config: &Config,
    renamed: &std::collections::HashSet<PathBuf>,
) -> (Vec<PathBuf>, Option<Duration>) {
    let settle = config.watcher.settle_time;
    let now = SystemTime::now();
    let mut ready = BTreeMap::new();
    let mut recheck: Option<Duration> = None;
    let Ok(entries) = std::fs::read_dir(&config.queue_dir) else {
        warn!(dir = %config.queue_dir.display(), "cannot read the queue folder");
        return (vec![], Some(settle));
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_ignored(&name) {
            continue;
        }
        let path = entry.path();
        let Some(st) = stamp(&path) else { continue };
        match now.duration_since(st.mtime) {
            _ if renamed.contains(&path) => {
                ready.insert(name, path);
            }
            Ok(age) if age >= settle => {
                ready.insert(name, path);
            }
            Ok(age) => {
                let wait = settle - age;
                recheck = Some(recheck.map_or(wait, |r| r.min(wait)));
            }
            // An mtime in the future (clock step): look again after a settle time.
            Err(_) => recheck = Some(recheck.map_or(settle, |r| r.min(settle))),
        }
    }
    (ready.into_values().collect(), recheck)
}

/// Reads a settled file; `Changed` if it was written to while we read it.
fn read_draft(path: &Path, config: &Config) -> Read {
    let Some(before) = stamp(path) else {
        return Read::Changed;
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Read::Bad(format!("cannot read the file: {e}")),
    };
    if stamp(path) != Some(before) || bytes.len() as u64 != before.len {
        return Read::Changed;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match draft::parse(&bytes, &stem, config) {
        Ok(d) => Read::Ready(d),
        Err(e) => Read::Bad(e.to_string()),
    }
}

/// Moves `path` into `dir` under a name not yet taken there; with `error`, writes
/// `NAME.error` beside it first.
fn move_to(path: &Path, dir: &Path, error: Option<&str>) {
    let name = file_name(path);
    let target = free_name(dir, &name);
    if let Some(why) = error {
        let mut error_file = target.clone().into_os_string();
        error_file.push(".error");
        // Written aside and renamed in, so nobody reads a half-written explanation.
        let staging = dir.join(format!(".{name}.error.tmp"));
        let text = format!("{name}: rejected: {why}\n");
        if let Err(e) =
            std::fs::write(&staging, text).and_then(|()| std::fs::rename(&staging, &error_file))
        {
            warn!(file = %name, error = %e, "cannot write the .error file");
        }
    }
    if let Err(e) = std::fs::rename(path, &target) {
        warn!(file = %name, to = %target.display(), error = %e, "cannot move the draft");
    }
}

/// `dir/name`, or `dir/stem.N.ext` for the first N free.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let p = Path::new(name);
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = p
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (1..)
        .map(|n| dir.join(format!("{stem}.{n}{ext}")))
        .find(|c| !c.exists())
        .expect("some name is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_ignored() {
        for n in [".hidden.md", "a.tmp", "a.part", ".a.md.swp", "a.md~"] {
            assert!(is_ignored(n), "{n}");
        }
        for n in ["a.md", "post.txt", "tmp.md"] {
            assert!(!is_ignored(n), "{n}");
        }
    }

    #[test]
    fn free_name_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(free_name(dir.path(), "a.md"), dir.path().join("a.md"));
        std::fs::write(dir.path().join("a.md"), "x").unwrap();
        assert_eq!(free_name(dir.path(), "a.md"), dir.path().join("a.1.md"));
    }
}
