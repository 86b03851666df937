//! The queue folder: finds draft files and bundles (a folder holding `post.md` and the files
//! it names, see [`bundle`]), takes them once complete, and moves them out.
//!
//! The folder scan is the truth; notify events only say "look now" (a lost or overflowed
//! event costs nothing but a later look). Only names with a configured extension are drafts;
//! editors' and downloaders' temporary names are never touched, and neither are sync tools'
//! conflict copies (said once in the log). A draft is opened without following links, checked
//! on its descriptor (a regular file with one link, within `max_draft_size`) and read through
//! it. It is read only while nobody has it open for writing: the kernel tells,
//! by granting a read lease; where leases are unavailable, once its mtime is older than
//! `settle_time` (re-checked after reading). A draft written in steps is never taken in part
//! (see [`continued`]). A draft is moved to `accepted/` only after the
//! store committed it, and only if the name still holds the file that was read (else it is
//! read again); taking is idempotent (the same draft again is `Unchanged`), so a crash
//! between the two neither loses nor duplicates it. A draft that cannot be moved is
//! remembered and not taken again until it changes. If the folder is removed and
//! created again, the watch follows the new one. This module never schedules or sends.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::{Config, Live};
use crate::draft::{self, Draft};
use crate::post::{DeadReason, PostState};
use crate::store::{self, Handle, Taken};

mod bundle;
mod continued;
mod moved;

pub use bundle::{classify as classify_folder, validate as validate_bundle, POST};
use moved::Destinations;

/// How many drafts go into the store in one transaction.
const BATCH: usize = 500;

/// How many upcoming slots a `next-slot` draft may choose from.
const SLOT_LOOKAHEAD: usize = 1000;

/// How often to look for the queue folder while it is missing (no event can say it is back).
const FOLDER_RECHECK: Duration = Duration::from_secs(1);

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

/// Names that editors, sync tools and browsers use for files still being written, or for
/// their own bookkeeping: never taken, never moved, never logged.
pub fn is_ignored(name: &str) -> bool {
    const TEMP_EXTENSIONS: [&str; 10] = [
        "tmp",
        "temp",
        "part",
        "partial",
        "crdownload",
        "download",
        "kate-swp",
        "!sync",
        "!ut",
        "crswap",
    ];
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    // vim's swap files: .swp, .swo, .swx and on down the alphabet (.swa ... .swz).
    let vim_swap = ext.len() == 3 && ext.starts_with("sw");
    name.starts_with('.') // dotfiles: .#emacs-lock, .~lock.*#, .syncthing.*, .dropbox*, rsync's
        || name.starts_with('#') // emacs autosave #name#
        || name.ends_with('#')
        || name.ends_with('~') // emacs and many others' backups
        || name.starts_with("~$") // Microsoft Office owner files
        || name.starts_with("~syncthing~")
        || name == "4913" // vim's probe for a writable folder
        || vim_swap
        || TEMP_EXTENSIONS.contains(&ext.as_str())
}

/// Names sync tools and file managers give a second copy of a file: Syncthing's
/// `X.sync-conflict-…`, Dropbox's and Nextcloud's `X (… conflicted copy …)`, ownCloud's
/// `X_conflict-…`, Dropbox's `X (Case Conflict)`, downloads' and Drive's `X (1)`, Windows'
/// `X - Copy` and `X - Copy (2)`, Drive's `Copy of X`. Such a copy carries the draft's id,
/// often with an older text or without the `publish_at` edited in since: taking it would
/// replace the post, and maybe send it early.
pub fn is_conflict_copy(name: &str) -> bool {
    let lower = name.to_lowercase();
    let stem = match lower.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => lower.as_str(),
    };
    let numbered = |s: &str| {
        s.strip_suffix(')')
            .and_then(|s| s.rsplit_once(" ("))
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let without_number = if numbered(stem) {
        stem.rsplit_once(" (").map_or(stem, |(s, _)| s)
    } else {
        stem
    };
    lower.contains(".sync-conflict-")
        || lower.contains("conflicted copy")
        || lower.contains("(case conflict")
        || lower.contains("_conflict-")
        || lower.starts_with("copy of ")
        || numbered(stem)
        || without_number.ends_with(" - copy")
}

/// What the watcher does with a name in the queue folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A draft: taken (or rejected with a reason).
    Draft,
    /// A temporary name: left alone, silently.
    Ignored,
    /// A sync tool's conflict copy: left alone; said once at WARN.
    ConflictCopy,
    /// Another extension: left alone; said once at INFO.
    Other,
}

impl NameKind {
    /// Why a name of this kind is left alone, in words.
    pub fn why_not_a_draft(self) -> &'static str {
        match self {
            NameKind::Draft => "",
            NameKind::Ignored => "a temporary name (editor, sync tool or browser)",
            NameKind::ConflictCopy => "a sync tool's or file manager's second copy of a draft (merge it into the draft by hand, then delete it)",
            NameKind::Other => "its extension is not in watcher.extensions",
        }
    }
}

pub fn classify(name: &str, extensions: &[String]) -> NameKind {
    if is_ignored(name) {
        return NameKind::Ignored;
    }
    match Path::new(name).extension() {
        Some(e) if extensions.contains(&e.to_string_lossy().to_ascii_lowercase()) => {
            if is_conflict_copy(name) {
                NameKind::ConflictCopy
            } else {
                NameKind::Draft
            }
        }
        _ => NameKind::Other,
    }
}

/// Why a draft (file or bundle folder) is refused for its name alone: a name that is not
/// UTF-8. Posts and their files are told apart by name (where a draft came from, whether a
/// file continues one), and two such names can read alike once shown: `promo\xff.md` and
/// `promo\xfe.md` would pass for one file, and one could move the other's post earlier.
pub fn name_refusal(path: &Path) -> Option<String> {
    let name = path.file_name()?;
    name.to_str().is_none().then(|| {
        format!(
            "its name ({}) is not valid UTF-8, and lipost tells drafts apart by name: rename it (e.g. with `mv`) to a name in UTF-8",
            shown(&name.to_string_lossy())
        )
    })
}

/// A file name as logs and `.error` files show it: escaped, so a name holding a newline or
/// a control character cannot start a line of its own.
pub fn shown(name: &str) -> String {
    name.escape_debug().to_string()
}

/// Keeps notify's watcher alive; dropping it stops the events.
pub struct Events {
    _watcher: Box<dyn notify::Watcher + Send>,
    /// Bundle folders watched besides the queue folder.
    bundles: HashSet<PathBuf>,
}

impl Events {
    /// Watches exactly these bundle folders besides the queue folder.
    fn follow(&mut self, folders: HashSet<PathBuf>) {
        for gone in self.bundles.difference(&folders) {
            let _ = self._watcher.unwatch(gone);
        }
        for new in folders.difference(&self.bundles) {
            if let Err(e) = self
                ._watcher
                .watch(new, notify::RecursiveMode::NonRecursive)
            {
                warn!(folder = %shown(&new.display().to_string()), error = %e, "cannot watch a bundle folder; files arriving in it are seen at the next look");
            }
        }
        self.bundles = folders;
    }
}

/// Files renamed into the folder: complete already (the stage-and-rename pattern), so they
/// need not wait for the settle time. A hint from notify; the scan still decides.
pub type RenamedIn = Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>;

/// Starts watching the queue folder; every event wakes `look`.
fn watch(config: &Config, look: Arc<Notify>, renamed: RenamedIn) -> Result<Events, WatchError> {
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
    Ok(Events {
        _watcher: watcher,
        bundles: HashSet::new(),
    })
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
        bundles: HashSet::new(),
    })
}

/// Creates the queue folder and its `accepted/` and `rejected/` beside the drafts.
pub fn prepare_folders(config: &Config) -> Result<(), WatchError> {
    let queue = config.queue_dir.clone();
    std::fs::create_dir_all(&queue).map_err(|source| WatchError::Folder {
        path: queue,
        source,
    })?;
    // A member of the folder's group may have put a file in the place of `accepted/` or
    // `rejected/`. That must not keep every post from going out: drafts are still taken
    // (those that cannot be moved out stay where they are, said at each move), and the
    // log says what to fix.
    for dir in [config.accepted_dir(), config.rejected_dir()] {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::error!(folder = %shown(&dir.display().to_string()), error = %e, "cannot make this folder (a file or a link in its place?); drafts are still taken, but none can be moved there: remove what is in its place and restart lipost, which makes it");
        }
    }
    Ok(())
}

/// Whether a file last modified at `mtime` is at rest, where no lease can tell (the settle
/// time rule).
enum Rest {
    Settled,
    /// Modified more than [`FAR_FUTURE`] ahead: copied with its times kept from a machine
    /// whose clock is that far ahead (`cp -p`, an archive). Waiting for that time could wait
    /// for days; a writer at work, even on a file server whose clock runs ahead, does not
    /// stamp a day ahead. The check after reading still catches a change during the read.
    FarFuture,
    /// Modified this much ahead of this machine's clock (a file server whose clock runs a
    /// little ahead): at rest once that time has passed and the settle time after it.
    Ahead(Duration),
    Wait(Duration),
}

/// How far ahead a modification time must be to be taken as a copied one, not as the clock
/// of a file server a little ahead of ours (whose writers' files must still settle).
const FAR_FUTURE: Duration = Duration::from_secs(24 * 3600);

fn at_rest(mtime: SystemTime, settle: Duration) -> Rest {
    let now = SystemTime::now();
    match (now.duration_since(mtime), mtime.duration_since(now)) {
        (Ok(age), _) if age >= settle => Rest::Settled,
        (Ok(age), _) => Rest::Wait(settle - age),
        (Err(_), Ok(ahead)) if ahead > FAR_FUTURE => Rest::FarFuture,
        (Err(_), ahead) => Rest::Ahead(ahead.unwrap_or_default()),
    }
}

/// The device and inode of the queue folder: tells a re-created folder from the watched one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FolderId {
    dev: u64,
    ino: u64,
}

fn folder_id(dir: &Path) -> Option<FolderId> {
    let m = std::fs::metadata(dir).ok()?;
    m.is_dir().then(|| FolderId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// Takes drafts from the folder into the store.
pub struct Intake {
    config: Live,
    store: Handle,
    look: Arc<Notify>,
    renamed: RenamedIn,
    /// The watch and the folder it is on; `None` while the folder is missing.
    watching: Mutex<Option<(Events, FolderId)>>,
    /// Names with another extension already reported, so each is said once.
    reported: Mutex<HashSet<String>>,
    /// Drafts taken (or refused) that could not be moved out, as they were then: not taken
    /// again until they change, so a stuck file is neither re-sent nor re-logged.
    stuck: Arc<Mutex<std::collections::HashMap<PathBuf, Snapshot>>>,
    /// Folders without a `post.md` already reported, so each is said once.
    not_bundles: Mutex<HashSet<String>>,
    /// Drafts taken lately from files written in place: a file without front matter under
    /// one of their names is the rest of that draft.
    recent: Arc<continued::Recent>,
    /// Unfinished drafts already said to be waiting for the rest, as they were then.
    waiting: Mutex<std::collections::HashMap<PathBuf, Seen>>,
}

/// Which file a name held when it was read: a name that holds another file, or the same one
/// changed, since is read again before it is moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    /// Permissions: a draft that could not be moved out for want of them is tried again once
    /// they change (`chmod g+w` on a bundle folder).
    mode: u32,
}

impl Seen {
    /// A folder is the same folder while its inode is: its size and mtime change with every
    /// name added to it, which changes nothing that was read from its files.
    fn of(m: &std::fs::Metadata) -> Seen {
        let dir = m.is_dir();
        Seen {
            dev: m.dev(),
            ino: m.ino(),
            size: if dir { 0 } else { m.size() },
            mtime: if dir { 0 } else { m.mtime() },
            mtime_nsec: if dir { 0 } else { m.mtime_nsec() },
            mode: m.mode(),
        }
    }

    /// What `path` holds now, without following a link.
    fn now(path: &Path) -> Option<Seen> {
        std::fs::symlink_metadata(path).ok().map(|m| Seen::of(&m))
    }
}

/// Every name a draft was read through (the file; or a bundle's folder, its `post.md` and
/// the files it names), with what each held then.
type Snapshot = Vec<(PathBuf, Seen)>;

/// Whether every name still holds what it held when the draft was read.
fn unchanged(snapshot: &Snapshot) -> bool {
    snapshot.iter().all(|(p, s)| Seen::now(p) == Some(*s))
}

/// Which file a draft was read from, for the store (`Draft::source_stamp`): the inode, the
/// size, and the modification and change times. Saving, copying or renaming a
/// file in again changes one of them (a rename changes the change time); a file that was
/// never touched since keeps them all.
pub(crate) fn source_stamp(m: &std::fs::Metadata) -> String {
    // No device number: it changes across reboots and mounts (NFS, LVM, btrfs), and from
    // one node to another on a shared folder.
    format!(
        "{}:{}:{}.{:09}:{}.{:09}",
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

/// What one scan did, and when to look again for files not yet complete.
#[derive(Debug, Default)]
pub struct Scan {
    pub taken: usize,
    pub rejected: usize,
    pub recheck_in: Option<Duration>,
}

enum Read {
    Ready(Box<Draft>, Snapshot),
    /// Refused; with what was read, when it was read.
    Bad(String, Option<Snapshot>),
    /// A folder without `post.md`: not a bundle (yet); watched for one to arrive.
    NoPost,
    /// Could not be moved out before, and unchanged since.
    Stuck,
    /// Someone may still be writing it: look again after this long (or at its close).
    Busy(Duration),
    /// Written in place and closed, but it ends inside its front matter or has no text yet:
    /// its writer may add the rest (see [`continued`]). Looked at again after this long.
    Unfinished(Duration, Seen),
    /// Written in place without front matter right after a draft of the same name was
    /// taken: the rest of that draft, whatever it holds.
    Continued(continued::Continuation, Snapshot),
    /// Gone between the listing and the open.
    Gone,
}

fn sooner(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Intake {
    /// Starts watching the queue folder (every event wakes `look`); scan it afterwards, so a
    /// draft arriving in between is seen by one or the other.
    pub fn start(config: Live, store: Handle, look: Arc<Notify>) -> Result<Intake, WatchError> {
        lease::ignore_break_signal();
        let current = config.get();
        crate::media::sweep(&current);
        let renamed = RenamedIn::default();
        let events = watch(&current, look.clone(), renamed.clone())?;
        let watching = folder_id(&current.queue_dir).map(|id| (events, id));
        Ok(Intake {
            config,
            store,
            look,
            renamed,
            watching: Mutex::new(watching),
            reported: Mutex::default(),
            stuck: Arc::default(),
            not_bundles: Mutex::default(),
            recent: Arc::default(),
            waiting: Mutex::default(),
        })
    }

    /// Whether the queue folder is there; re-arms the watch when it was replaced.
    fn follow_folder(&self, config: &Config) -> Result<bool, WatchError> {
        let current = folder_id(&config.queue_dir);
        let mut watching = self.watching.lock().unwrap_or_else(|p| p.into_inner());
        match (current, watching.as_ref()) {
            (Some(id), Some((_, watched))) if *watched == id => Ok(true),
            (None, was) => {
                if was.is_some() {
                    warn!(dir = %shown(&config.queue_dir.display().to_string()), "the queue folder is gone; waiting for it to be created again");
                    *watching = None;
                }
                Ok(false)
            }
            (Some(id), _) => {
                *watching = None;
                prepare_folders(config)?;
                let events = watch(config, self.look.clone(), self.renamed.clone())?;
                *watching = Some((events, id));
                warn!(dir = %shown(&config.queue_dir.display().to_string()), "the queue folder was created again; watching the new one");
                Ok(true)
            }
        }
    }

    /// One full look at the folder: takes every complete draft.
    pub async fn scan(&self) -> Result<Scan, WatchError> {
        let config = self.config.get().clone();
        if !self.follow_folder(&config)? {
            return Ok(Scan {
                recheck_in: Some(FOLDER_RECHECK),
                ..Scan::default()
            });
        }
        let renamed: Arc<HashSet<PathBuf>> = Arc::new(std::mem::take(
            &mut *self.renamed.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        let listed = tokio::task::spawn_blocking(move || list_folder(&config))
            .await
            .map_err(|e| store::StoreError::Task(e.to_string()))?;
        self.report_others(listed.others);
        self.follow_bundles(&listed.drafts);
        let mut scan = Scan::default();
        if !listed.readable {
            scan.recheck_in = Some(self.config.get().watcher.settle_time);
        }
        for chunk in listed.drafts.chunks(BATCH) {
            let (taken, rejected, recheck) = self.take(chunk.to_vec(), renamed.clone()).await?;
            scan.taken += taken;
            scan.rejected += rejected;
            if let Some(r) = recheck {
                scan.recheck_in = sooner(scan.recheck_in, r);
            }
        }
        Ok(scan)
    }

    /// Says once per file, as it is, that an unfinished draft waits for the rest.
    fn say_waiting(&self, path: &Path, seen: Seen, window: Duration) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.retain(|p, s| Seen::now(p) == Some(*s));
        if waiting.insert(path.to_path_buf(), seen) != Some(seen) {
            info!(file = %shown(&file_name(path)), wait = %crate::config::fmt_dur(window), "the draft has no text yet, or its front matter is not closed: its writer may still be adding the rest; it is rejected if nothing is added within watcher.incomplete_wait");
        }
    }

    /// Says once per folder that it holds no `post.md`; forgets folders no longer without.
    fn report_not_bundles(&self, now: HashSet<String>) {
        let mut reported = self.not_bundles.lock().unwrap_or_else(|p| p.into_inner());
        for name in now.difference(&reported) {
            info!(folder = %shown(name), "a folder without {POST}: not a bundle (yet); taken once {POST} and the files it names are in it");
        }
        *reported = now;
    }

    /// Says once per name that a file is not a draft; forgets names no longer there.
    fn report_others(&self, others: Vec<(String, NameKind)>) {
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        for (name, kind) in &others {
            if reported.contains(name) {
                continue;
            }
            if *kind == NameKind::ConflictCopy {
                warn!(file = %shown(name), "a sync tool's conflict copy of a draft: not taken, left where it is; merge what you want into the draft by hand, then delete it");
            } else {
                info!(file = %shown(name), "not a draft (its extension is not in watcher.extensions); left where it is");
            }
        }
        *reported = others.into_iter().map(|(n, _)| n).collect();
    }

    /// Watches each bundle folder too (notify watches one level), so a file arriving in one
    /// is seen; drops the watches of folders gone.
    fn follow_bundles(&self, listed: &[(PathBuf, bool)]) {
        let folders: HashSet<PathBuf> = listed
            .iter()
            .filter(|(p, bundle)| *bundle && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
            .map(|(p, _)| p.clone())
            .collect();
        let mut watching = self.watching.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((events, _)) = watching.as_mut() {
            events.follow(folders);
        }
    }

    /// Reads, parses, stores and moves a batch of drafts; when to look again at busy ones.
    async fn take(
        &self,
        files: Vec<(PathBuf, bool)>,
        renamed: Arc<HashSet<PathBuf>>,
    ) -> Result<(usize, usize, Option<Duration>), WatchError> {
        let config = self.config.get().clone();
        let stuck = self.stuck.clone();
        let was_renamed = renamed.clone();
        let recent = self.recent.clone();
        let read: Vec<(PathBuf, Read)> = tokio::task::spawn_blocking(move || {
            let mut stuck = stuck.lock().unwrap_or_else(|p| p.into_inner());
            stuck.retain(|p, _| std::fs::symlink_metadata(p).is_ok());
            files
                .into_iter()
                .map(|(p, is_bundle)| {
                    let r = match stuck.get(&p) {
                        Some(snapshot) if unchanged(snapshot) => Read::Stuck,
                        _ => {
                            stuck.remove(&p);
                            // What the name held before it was checked: a refusal that read
                            // nothing (a pipe, a link, a file too large) is moved only if
                            // the name still holds that, not a draft saved over it since.
                            let before = Seen::now(&p).map(|seen| {
                                let mut before = vec![(p.clone(), seen)];
                                // A folder is the same while its inode is: what it holds
                                // is the draft.
                                if is_bundle {
                                    let post = p.join(bundle::POST);
                                    before.extend(Seen::now(&post).map(|seen| (post, seen)));
                                }
                                before
                            });
                            // A parser that panics on a hostile file (the media checks run
                            // third-party parsers) rejects that draft, not the whole batch,
                            // and never stops the daemon.
                            let was_renamed = was_renamed.contains(&p);
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                if let Some(why) = name_refusal(&p) {
                                    Read::Bad(why, None)
                                } else if is_bundle {
                                    bundle::read(&p, &config, was_renamed, true)
                                } else {
                                    read_draft(&p, &config, was_renamed, &recent)
                                }
                            }))
                            .unwrap_or_else(|panic| {
                                let what = panic
                                    .downcast_ref::<&str>()
                                    .map(|s| s.to_string())
                                    .or_else(|| panic.downcast_ref::<String>().cloned())
                                    .unwrap_or_default();
                                warn!(file = %shown(&file_name(&p)), error = %what, "checking a draft failed unexpectedly; it is rejected");
                                Read::Bad(
                                    format!("checking it failed unexpectedly ({what}): a file in it is malformed in a way lipost does not handle; save it again, or report it"),
                                    None,
                                )
                            });
                            match (r, before) {
                                (Read::Bad(why, None), Some(before)) => Read::Bad(why, Some(before)),
                                (r, _) => r,
                            }
                        }
                    };
                    (p, r)
                })
                .collect()
        })
        .await
        .map_err(|e| store::StoreError::Task(e.to_string()))?;

        let mut recheck = None;
        let mut good: Vec<(PathBuf, Draft)> = Vec::new();
        let mut seen: Vec<Snapshot> = Vec::new();
        let mut bad: Vec<(PathBuf, String, Option<Snapshot>)> = Vec::new();
        let mut continuations = Vec::new();
        let mut no_post = HashSet::new();
        let window = self.config.get().watcher.incomplete_wait;
        for (p, r) in read {
            match r {
                Read::Continued(c, s) => continuations.push((p, c, s)),
                Read::Ready(d, s) => {
                    good.push((p, *d));
                    seen.push(s);
                }
                Read::Bad(why, s) => bad.push((p, why, s)),
                Read::Busy(wait) => recheck = sooner(recheck, wait),
                Read::Unfinished(wait, s) => {
                    self.say_waiting(&p, s, window);
                    recheck = sooner(recheck, wait);
                }
                Read::NoPost => {
                    no_post.insert(file_name(&p));
                }
                Read::Gone | Read::Stuck => {}
            }
        }
        self.report_not_bundles(no_post);
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
        // One entry per continuation, in order: the post to stop, if there is one.
        let stop: Vec<Option<(String, String)>> = continuations
            .iter()
            .map(|(p, c, _)| {
                let id = c.post_id.clone()?;
                let letter = c.letter(&shown(&file_name(p)), &id);
                Some((id, letter))
            })
            .collect();
        let (good, results, stopped) = self
            .store
            .call(move |s| {
                let now = Utc::now();
                // The post taken from the first part goes no further until a person acts.
                let mut stopped = Vec::with_capacity(stop.len());
                for post in &stop {
                    // Stopped already, if an earlier pass committed this and then failed.
                    stopped.push(match post {
                        Some((id, why)) => {
                            s.expire(id, DeadReason::DraftIncomplete, why, now)?
                                || s.dead_reason(id)? == Some(DeadReason::DraftIncomplete)
                        }
                        None => false,
                    });
                }
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
                Ok((good, results, stopped))
            })
            .await?;
        for ((p, c, s), stopped) in continuations.into_iter().zip(stopped) {
            if let (true, Some(id)) = (stopped, &c.post_id) {
                warn!(post_id = %id, file = %shown(&file_name(&p)), reason = %DeadReason::DraftIncomplete, "its draft file was written to again after it was taken: the post is not sent; drop the whole draft again");
            }
            bad.push((
                p.clone(),
                c.reason(&shown(&file_name(&p)), stopped),
                Some(s),
            ));
        }

        let config = self.config.get().clone();
        let stuck = self.stuck.clone();
        let recent = self.recent.clone();
        let (taken, rejected, changed, withdrawn) = tokio::task::spawn_blocking(move || {
            let mut taken = 0;
            let mut changed = false;
            let mut withdrawn: Vec<(String, String)> = Vec::new();
            let mut stuck = stuck.lock().unwrap_or_else(|p| p.into_inner());
            let mut to = Destinations::default();
            // The name is checked right before the rename: a file saved over it (or appended
            // to) since the read is not the one the store holds, so it stays to be read again.
            let mut move_out = |path: &Path, seen: Option<Snapshot>, dir: &Path, why: Option<&str>| {
                if seen.as_ref().is_some_and(|s| !unchanged(s)) {
                    info!(file = %shown(&file_name(path)), "the draft changed while it was being taken; reading it again");
                    changed = true;
                } else if !to.move_to(path, dir, why) {
                    if let Some(s) = seen {
                        stuck.insert(path.to_path_buf(), s);
                    }
                }
            };
            for (((path, d), result), s) in good.iter().zip(results).zip(seen) {
                match result {
                    Ok(how) => {
                        taken += 1;
                        log_taken(d, &how, path);
                        if d.front_matter && !renamed.contains(path) {
                            // An edit's text is queued to go out at once: nothing to stop.
                            let post = (!d.edit).then(|| d.id.clone());
                            recent.remember(file_name(path), post, config.watcher.incomplete_wait);
                        }
                        // Moved or deleted before lipost could move it out: whoever did
                        // may have meant to withdraw it, so it does not go out on its own.
                        if matches!(how, Taken::Created | Taken::Replaced)
                            && gone(path)
                            && !moved_by_lipost(&s, &config)
                        {
                            withdrawn.push((d.id.clone(), file_name(path)));
                            continue;
                        }
                        move_out(path, Some(s), &config.accepted_dir(), None);
                    }
                    Err(refused) => {
                        if d.front_matter && !renamed.contains(path) {
                            recent.remember(file_name(path), None, config.watcher.incomplete_wait);
                        }
                        bad.push((path.clone(), refused.to_string(), Some(s)));
                    }
                }
            }
            for (path, why, s) in bad.iter_mut() {
                warn!(file = %shown(&file_name(path)), reason = %why.escape_debug(), "draft rejected");
                move_out(path, s.take(), &config.rejected_dir(), Some(why));
            }
            (taken, bad.len(), changed, withdrawn)
        })
        .await
        .map_err(|e| store::StoreError::Task(e.to_string()))?;
        self.stop_withdrawn(withdrawn).await?;
        if changed {
            recheck = sooner(recheck, self.config.get().watcher.settle_time);
        }
        Ok((taken, rejected, recheck))
    }

    /// Posts whose draft left the queue folder between the read and the move out: they are
    /// stopped (dead as `draft_withdrawn`) unless already sent. Dropping the draft again
    /// schedules them again.
    async fn stop_withdrawn(
        &self,
        withdrawn: Vec<(String, String)>,
    ) -> Result<(), store::StoreError> {
        for (id, file) in withdrawn {
            let why = format!("its draft {} left the queue folder (moved or deleted) while it was being taken: not sent; drop it again to schedule it", shown(&file));
            let (post, message) = (id.clone(), why.clone());
            let stopped = self
                .store
                .call(move |s| s.expire(&post, DeadReason::DraftWithdrawn, &message, Utc::now()))
                .await?;
            if stopped {
                warn!(post_id = %id, file = %shown(&file), reason = %DeadReason::DraftWithdrawn, "{why}");
            } else {
                warn!(post_id = %id, file = %shown(&file), "its draft left the queue folder while it was being taken, but the post had gone out (or on its way) already");
            }
        }
        Ok(())
    }
}

/// Nothing is at `path` any more (not even a link).
fn gone(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// Whether the draft read as `snapshot` (its first name: the file, or the bundle's folder)
/// is in `accepted/` or `rejected/` now: another lipost on the same folder (PostgreSQL nodes
/// sharing it) took it first and moved it. That is no withdrawal.
fn moved_by_lipost(snapshot: &Snapshot, config: &Config) -> bool {
    let Some((_, seen)) = snapshot.first() else {
        return false;
    };
    [config.accepted_dir(), config.rejected_dir()]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .any(|entry| {
            entry
                .metadata()
                .is_ok_and(|m| m.ino() == seen.ino && m.dev() == seen.dev)
        })
}

fn log_taken(d: &Draft, how: &Taken, path: &Path) {
    let due = match (d.publish_at, d.next_slot) {
        (Some(t), _) => t.to_rfc3339(),
        (None, true) => "the next free slot (see `lipost list`)".to_string(),
        (None, false) => "as soon as possible".to_string(),
    };
    let (what, state) = match how {
        Taken::Created => ("draft scheduled", PostState::Scheduled),
        Taken::Replaced => ("draft replaced the scheduled post", PostState::Scheduled),
        Taken::Unchanged { state } => ("draft already taken; unchanged", *state),
        Taken::Edit => (
            "edit of the published post's text taken; sending it",
            PostState::Published,
        ),
        Taken::LeftOver { state } => {
            warn!(post_id = %d.id, state = %state, file = %shown(&file_name(path)), "found again the very file this post was taken from, untouched since; the post stays {state} (nobody dropped it again): save the file again, or `touch` it, to schedule it again");
            return;
        }
    };
    info!(post_id = %d.id, account = %d.account, state = state.as_str(), due = %due, file = %shown(&file_name(path)), "{what}");
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What a scan found: drafts (sorted by name), names with another extension, and whether
/// the folder could be read at all.
struct Listing {
    /// With whether each is a bundle (a folder, or a link in its place).
    drafts: Vec<(PathBuf, bool)>,
    others: Vec<(String, NameKind)>,
    readable: bool,
}

fn list_folder(config: &Config) -> Listing {
    let mut drafts = BTreeMap::new();
    let mut others = Vec::new();
    let entries = match std::fs::read_dir(&config.queue_dir) {
        Ok(entries) => entries,
        Err(e) => {
            warn!(dir = %shown(&config.queue_dir.display().to_string()), error = %e, "cannot read the queue folder");
            return Listing {
                drafts: vec![],
                others,
                readable: false,
            };
        }
    };
    let (accepted, rejected) = (config.accepted_dir(), config.rejected_dir());
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let t = entry.file_type().ok();
        // A folder is a bundle; so is a link to one, to be refused (links are not followed).
        let folder = t.is_some_and(|t| {
            t.is_dir() || (t.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_dir()))
        });
        let kind = classify(&name, &config.watcher.extensions);
        // A folder named like a draft file stays one (refused as a folder, with a hint).
        if folder && kind == NameKind::Other && path != accepted && path != rejected {
            match bundle::classify(&name) {
                NameKind::Draft => {
                    drafts.insert(name, (path, true));
                }
                NameKind::ConflictCopy => others.push((name, NameKind::ConflictCopy)),
                NameKind::Ignored | NameKind::Other => {}
            }
            continue;
        }
        match kind {
            NameKind::Draft => {
                drafts.insert(name, (path, false));
            }
            // accepted/ and rejected/ live here too: folders are not worth a word.
            kind @ (NameKind::Other | NameKind::ConflictCopy)
                if !entry.file_type().is_ok_and(|t| t.is_dir()) =>
            {
                others.push((name, kind))
            }
            NameKind::Other | NameKind::ConflictCopy | NameKind::Ignored => {}
        }
    }
    Listing {
        drafts: drafts.into_values().collect(),
        others,
        readable: true,
    }
}

/// Opens a draft without following a link and without blocking on a fifo, and checks the
/// descriptor: a regular file no larger than `cap`. Read it through that descriptor. Links,
/// fifos, devices and folders are refused without being opened at all where `lstat` can tell.
/// Why a draft could not be opened or read.
#[derive(Debug)]
pub enum Unreadable {
    /// Something about the file: it is refused with this reason.
    Refused(String),
    /// Nothing about the file: the daemon ran short of file descriptors or memory. The draft
    /// stays in the queue and is read again later.
    ForNow(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Refused(why) | Unreadable::ForNow(why) => f.write_str(why),
        }
    }
}

impl From<String> for Unreadable {
    fn from(why: String) -> Self {
        Unreadable::Refused(why)
    }
}

impl Unreadable {
    /// What intake does with the draft at `path`: reads it again later, or refuses it.
    fn into_read(self, path: &Path) -> Read {
        match self {
            Unreadable::ForNow(why) => read_later(path, &why),
            Unreadable::Refused(why) => Read::Bad(why, None),
        }
    }

    /// The same, said of `name` (a bundle's file).
    fn of_file(self, name: &str) -> Unreadable {
        match self {
            Unreadable::ForNow(why) => Unreadable::ForNow(format!("{name}: {why}")),
            Unreadable::Refused(why) => Unreadable::Refused(format!("{name}: {why}")),
        }
    }

    /// `what` failed with `e`: for now when the error says nothing about the file.
    fn of(what: &str, e: &std::io::Error) -> Unreadable {
        let why = format!("{what}: {e}");
        match for_now(e) {
            true => Unreadable::ForNow(why),
            false => Unreadable::Refused(why),
        }
    }
}

/// An error that says nothing about the file read: too many open files (the process's or
/// the system's), no memory, an interrupted call, a lease being broken. Refusing the draft
/// for it would send a good draft to `rejected/`. (An I/O error may well last: refused.)
pub(crate) fn for_now(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS | libc::EAGAIN | libc::EINTR
        )
    )
}

/// Why a draft written within `recent` and read off a filesystem with no space left may be
/// cut short: its writer (a copy, an editor's save) most likely failed part-way, and the
/// file looks whole. `None` when there is space, the file is older, or the filesystem does
/// not say (some FUSE mounts report no size).
pub(crate) fn written_on_a_full_disk(
    file: &File,
    written: SystemTime,
    recent: Duration,
) -> Option<String> {
    // A file last written longer ago than that was not cut short by this full disk.
    if SystemTime::now()
        .duration_since(written)
        .is_ok_and(|age| age > recent)
    {
        return None;
    }
    // SAFETY: fstatvfs on an open descriptor, writing into a zeroed struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(std::os::fd::AsRawFd::as_raw_fd(file), &mut st) } != 0 {
        return None;
    }
    (st.f_blocks > 0 && st.f_bavail == 0).then(|| {
        "its filesystem has no space left, so it may have been cut short while it was written: free some space, then save it again".to_string()
    })
}

/// How long a draft that could not be read for now waits before it is read again.
const FOR_NOW_WAIT: Duration = Duration::from_secs(10);

/// A draft that could not be read for now (see [`for_now`]): kept in the queue, read again.
fn read_later(path: &Path, why: &str) -> Read {
    warn!(file = %shown(&file_name(path)), error = %why, retry_in = %crate::config::fmt_dur(FOR_NOW_WAIT), "cannot read the draft for now (the daemon is short of file descriptors or memory); it stays in the queue and is read again");
    Read::Busy(FOR_NOW_WAIT)
}

pub fn open_draft(path: &Path, cap: u64) -> Result<(File, std::fs::Metadata), Unreadable> {
    const LINK: &str =
        "it is a symbolic link, and links are not followed: put the file itself in the queue folder";
    let seen = std::fs::symlink_metadata(path)
        .map_err(|e| Unreadable::of("cannot look at the file", &e))?;
    if seen.file_type().is_symlink() {
        return Err(Unreadable::Refused(LINK.into()));
    }
    if seen.is_dir() {
        return Err(Unreadable::Refused(format!(
            "it is a folder, not a regular file (a bundle is a folder whose name does not end in .{}: rename it)",
            Path::new(path).extension().unwrap_or_default().to_string_lossy()
        )));
    }
    not_regular(&seen)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Unreadable::Refused(LINK.to_string()),
            _ => Unreadable::of("cannot open the file", &e),
        })?;
    // The name may have been swapped since the lstat: the descriptor is what counts.
    let meta = file
        .metadata()
        .map_err(|e| Unreadable::of("cannot read the file's metadata", &e))?;
    not_regular(&meta)?;
    // A hard link is another name for a file that may live anywhere the daemon can read
    // (its credentials too); a draft has one name, in the queue folder.
    if meta.nlink() > 1 {
        return Err(Unreadable::Refused(format!(
            "it has {} hard links (it is also elsewhere), and linked files are not taken: put a copy of the file in the queue folder",
            meta.nlink()
        )));
    }
    if meta.len() > cap {
        return Err(Unreadable::Refused(too_large(meta.len(), cap)));
    }
    Ok((file, meta))
}

fn not_regular(m: &std::fs::Metadata) -> Result<(), String> {
    match not_a_file(m.mode()) {
        None => Ok(()),
        Some(what) => Err(format!("it is {what}, not a regular file")),
    }
}

/// What a name holds (by its `st_mode`) when it is not a regular file: "a named pipe", ...;
/// `None` for a regular file.
fn not_a_file(mode: u32) -> Option<&'static str> {
    match mode & libc::S_IFMT {
        libc::S_IFREG => None,
        libc::S_IFDIR => Some("a folder"),
        libc::S_IFIFO => Some("a named pipe"),
        libc::S_IFSOCK => Some("a socket"),
        libc::S_IFBLK | libc::S_IFCHR => Some("a device"),
        _ => Some("something else"),
    }
}

fn too_large(len: u64, cap: u64) -> String {
    format!("the file is {len} bytes; drafts may be at most {cap} bytes (watcher.max_draft_size); it was not read")
}

/// Reads at most `cap` bytes through the descriptor; a file that grew past it is refused.
pub fn read_capped(file: &File, cap: u64) -> Result<Vec<u8>, Unreadable> {
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Unreadable::of("cannot read the file", &e))?;
    if bytes.len() as u64 > cap {
        return Err(Unreadable::Refused(format!(
            "the file is over {cap} bytes (watcher.max_draft_size)"
        )));
    }
    Ok(bytes)
}

/// Reads a draft once nobody is writing it.
fn read_draft(path: &Path, config: &Config, renamed_in: bool, recent: &continued::Recent) -> Read {
    let cap = config.watcher.max_draft_size;
    let settle = config.watcher.settle_time;
    let (file, before) = match open_draft(path, cap) {
        Ok(f) => f,
        Err(Unreadable::Refused(_)) if std::fs::symlink_metadata(path).is_err() => {
            return Read::Gone
        }
        Err(e) => return e.into_read(path),
    };
    // With what was read, the descriptor's metadata after reading (under the lease, if any):
    // the name must still hold this file, unchanged, when the draft is moved out.
    let (bytes, after) = match lease::try_read(&file) {
        lease::Outcome::Held(_lease) => match read_capped(&file, cap) {
            Ok(b) => (b, file.metadata().ok()),
            Err(e) => return e.into_read(path),
        },
        lease::Outcome::Busy => return Read::Busy(settle),
        lease::Outcome::Unavailable(e) => {
            lease::note_rule(lease::Rule::Settle(e), settle);
            // Without a lease, a file at rest for the settle time is taken to be complete
            // (one renamed in is complete already: the stage-and-rename pattern).
            let mtime = before.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if !renamed_in {
                match at_rest(mtime, settle) {
                    Rest::Settled => {}
                    Rest::FarFuture => {
                        info!(file = %shown(&file_name(path)), "the draft's modification time is more than a day ahead (copied with its times from a machine whose clock is ahead?); taken without waiting for it")
                    }
                    // Looked at again only when at rest: said about once per file.
                    Rest::Ahead(ahead) => {
                        info!(file = %shown(&file_name(path)), ahead = %crate::config::fmt_dur(Duration::from_millis(ahead.as_millis() as u64)), "the draft's modification time is ahead of this machine's clock (a file server whose clock runs ahead?); it is taken once that time has passed and watcher.settle_time after it");
                        return Read::Busy(ahead + settle);
                    }
                    Rest::Wait(wait) => return Read::Busy(wait),
                }
            }
            let bytes = match read_capped(&file, cap) {
                Ok(b) => b,
                Err(e) => return e.into_read(path),
            };
            let after = file.metadata().ok();
            let unchanged = after.as_ref().is_some_and(|a| {
                a.len() == before.len() && a.modified().ok() == before.modified().ok()
            });
            if !unchanged || bytes.len() as u64 != before.len() {
                return Read::Busy(settle);
            }
            (bytes, after)
        }
    };
    let (seen, stamp, written) = match after {
        Some(m) if m.len() == bytes.len() as u64 => (
            vec![(path.to_path_buf(), Seen::of(&m))],
            source_stamp(&m),
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        ),
        _ => return Read::Busy(settle),
    };
    let window = config.watcher.incomplete_wait;
    let attempted = draft::front_matter_attempted(&bytes);
    if !renamed_in && !continued::blank(&bytes) && !attempted {
        if let Some(c) = recent.continues(&file_name(path), window) {
            return Read::Continued(c, seen);
        }
    }
    // A refused draft with front matter may be followed by the rest of it, too.
    let refused = |why: String, seen| {
        if !renamed_in && attempted {
            recent.remember(file_name(path), None, window);
        }
        Read::Bad(why, Some(seen))
    };
    // After the rest-of-a-draft check: a rest cut short stops the post taken from the first
    // part like any rest; and a first part refused here is remembered, so its rest is too.
    if let Some(why) = written_on_a_full_disk(&file, written, window) {
        return refused(why, seen);
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match draft::parse(&bytes, &stem, config) {
        Ok(mut d) => {
            d.source_stamp = Some(stamp);
            d.renamed_in = renamed_in;
            Read::Ready(Box::new(d), seen)
        }
        // A file renamed in is finished by its writer's own word.
        Err(e) if continued::unfinished(&bytes, &e) && !renamed_in => {
            let mtime = before.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            match at_rest(mtime, window) {
                Rest::Wait(wait) => Read::Unfinished(wait, seen[0].1),
                Rest::Ahead(ahead) => Read::Unfinished(ahead + window, seen[0].1),
                Rest::Settled | Rest::FarFuture => refused(e.to_string(), seen),
            }
        }
        Err(e) => refused(e.to_string(), seen),
    }
}

/// Linux read leases: the kernel grants one only while no process has the file open for
/// writing, which is exactly "the writer is done".
mod lease {
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use tracing::{info, warn};

    pub enum Outcome<'a> {
        /// Nobody writes; released when dropped.
        Held(Held<'a>),
        /// Someone has it open for writing.
        Busy,
        /// No lease here (no CAP_LEASE for another user's file, NFS, ...).
        Unavailable(std::io::Error),
    }

    pub struct Held<'a>(&'a File);

    impl Held<'_> {
        /// Whether the lease is still ours: the kernel breaks it when a writer opens the
        /// file, and after `lease-break-time` (45 s by default) lets the writer in even
        /// though we never released it (we ignore SIGIO). Work that long must check.
        pub fn intact(&self) -> bool {
            // SAFETY: fcntl on a descriptor this `File` owns; no memory is passed.
            let r = unsafe { libc::fcntl(self.0.as_raw_fd(), libc::F_GETLEASE) };
            r == libc::F_RDLCK
        }
    }

    impl Drop for Held<'_> {
        fn drop(&mut self) {
            // SAFETY: fcntl on a descriptor this `File` owns; no memory is passed.
            unsafe { libc::fcntl(self.0.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
        }
    }

    pub fn try_read(file: &File) -> Outcome<'_> {
        // SAFETY: as above.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) };
        if r == 0 {
            note_rule(Rule::Lease, Duration::ZERO);
            return Outcome::Held(Held(file));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => Outcome::Busy,
            _ => Outcome::Unavailable(e),
        }
    }

    /// A writer opening a leased file makes the kernel send SIGIO to the lease holder, and
    /// SIGIO's default action ends the process. The lease is held only for one read and then
    /// released, so the signal carries nothing we need.
    pub fn ignore_break_signal() {
        // SAFETY: installs SIG_IGN, which runs no code of ours.
        unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    }

    pub enum Rule {
        Lease,
        Settle(std::io::Error),
    }

    /// The rule last logged: 0 none yet, 1 lease, 2 settle time.
    static LOGGED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

    /// Says which rule decides when a draft is complete, each time it changes.
    pub fn note_rule(rule: Rule, settle: Duration) {
        let code = match rule {
            Rule::Lease => 1,
            Rule::Settle(_) => 2,
        };
        if LOGGED.swap(code, Ordering::Relaxed) == code {
            return;
        }
        match rule {
            Rule::Lease => info!("a draft is taken once no process has it open for writing (the kernel grants a read lease)"),
            Rule::Settle(e) => warn!(
                error = %e,
                settle_time = ?settle,
                "read leases are not available for the queue folder; a draft is taken once unchanged for watcher.settle_time (give the daemon CAP_LEASE, as the shipped unit does, for drafts owned by other users)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_ignored() {
        for n in [
            ".hidden.md",
            "a.tmp",
            "a.part",
            ".a.md.swp",
            "a.md~",
            "#launch.md#",
            ".#launch.md",
            "launch.md.swo",
            "launch.md.swx",
            "x.swa",
            "4913",
            "a.kate-swp",
            "a.md.crdownload",
            "a.md.partial",
            "a.md.download",
            "~$launch.md",
            ".~lock.launch.md#",
            "a.md.!sync",
            ".syncthing.a.md.tmp",
            ".dropbox",
            ".dropbox.cache",
            "~syncthing~a.md.tmp",
            "A.MD.TMP",
        ] {
            assert!(is_ignored(n), "{n}");
            assert_eq!(classify(n, &exts()), NameKind::Ignored, "{n}");
        }
        for n in ["a.md", "post.txt", "tmp.md", "swap.md", "4913.md"] {
            assert!(!is_ignored(n), "{n}");
        }
    }

    fn exts() -> Vec<String> {
        ["md", "txt", "markdown"].map(String::from).to_vec()
    }

    #[test]
    fn only_configured_extensions_are_drafts() {
        for n in ["a.md", "a.MD", "b.txt", "c.markdown", "d.Markdown"] {
            assert_eq!(classify(n, &exts()), NameKind::Draft, "{n}");
        }
        for n in ["a.pdf", "README", "a.md.bak", "a.mdx", "accepted"] {
            assert_eq!(classify(n, &exts()), NameKind::Other, "{n}");
        }
    }

    #[test]
    fn names_are_shown_on_one_line() {
        assert_eq!(shown("a\nINFO forged.md"), "a\\nINFO forged.md");
        assert!(!shown("x\r\u{1b}[2J.md").contains(['\n', '\r', '\u{1b}']));
    }

    #[test]
    fn conflict_copies_are_not_drafts() {
        for n in [
            "launch.sync-conflict-20261123-101010-ABCDEFG.md",
            "launch (conflicted copy 2026-11-23).md",
            "launch (Jo's conflicted copy 2026-11-23).md",
            "launch (conflicted copy 2026-11-23 101010).md",
            "launch (Case Conflict).md",
            "launch_conflict-20261123-101010.md",
            "launch (1).md",
            "launch (12).txt",
            "launch - Copy.md",
            "launch - Copy (2).md",
            "Copy of launch.md",
        ] {
            assert!(is_conflict_copy(n), "{n}");
            assert_eq!(classify(n, &exts()), NameKind::ConflictCopy, "{n}");
        }
        for n in [
            "launch.md",
            "launch (final).md",
            "top (10 tips).md",
            "copy.md",
            "ad copy.md",
            "conflict.md",
            "2026 (1)x.md",
        ] {
            assert!(!is_conflict_copy(n), "{n}");
        }
    }
}
