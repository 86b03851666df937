//! Bundles: a folder in the queue folder holding `post.md` and the files its front matter
//! names. Taken like a draft file (the same lease or settle rule, for `post.md` and for every
//! file named), as a whole: its files are checked and fixed in the media store, and the
//! folder moves to `accepted/` or `rejected/` in one rename.
//!
//! Every file is opened beneath the bundle's own descriptor, one path component at a time
//! with `O_NOFOLLOW`: no component may be a link, and the draft's paths hold no `..` and are
//! not absolute (checked in [`crate::draft::bundle_path`]), so nothing outside the bundle is
//! ever read. A file named but missing is waited for until the bundle has been quiet for the
//! settle time (it may still be arriving), or at once when the folder was renamed in.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{
    for_now, is_conflict_copy, is_ignored, lease, not_a_file, not_regular, read_capped, read_later,
    NameKind, Read, Seen, Snapshot,
};
use crate::config::Config;
use crate::content::Asset;
use crate::draft::{self, Draft};
use crate::media;

/// The draft inside a bundle.
pub const POST: &str = "post.md";

/// How long to wait before trying again when the media store could not be written.
const STORE_RETRY: Duration = Duration::from_secs(10);

/// What the watcher does with a folder in the queue folder (`accepted/` and `rejected/` are
/// left out before).
pub fn classify(name: &str) -> NameKind {
    if is_ignored(name) {
        NameKind::Ignored
    } else if is_conflict_copy(name) {
        NameKind::ConflictCopy
    } else {
        NameKind::Draft
    }
}

/// Reads a bundle once every file in it is complete; with `fix`, copies its files into the
/// media store (else only checks them).
pub(super) fn read(path: &Path, config: &Config, renamed_in: bool, fix: bool) -> Read {
    let read = match gather(path, config, renamed_in, fix) {
        Ok((draft, snapshot, _)) => Read::Ready(Box::new(draft), snapshot),
        Err(r) => r,
    };
    // Neither taken nor refused while a copy is still writing into it: the folder would move
    // under it.
    match read {
        Read::Ready(..) | Read::Bad(..)
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) =>
        {
            match still_written(path, config.watcher.settle_time, renamed_in) {
                Some(wait) => Read::Busy(wait),
                None => read,
            }
        }
        other => other,
    }
}

/// `lipost validate` on a bundle folder: every check intake makes, nothing copied. The draft
/// and, per file named, what it was found to be.
pub fn validate(path: &Path, config: &Config) -> Result<(Draft, Vec<String>), String> {
    match gather(path, config, true, false) {
        Ok((draft, _, found)) => Ok((draft, found)),
        Err(Read::Bad(why, _)) => Err(why),
        Err(Read::NoPost) => Err(format!(
            "a folder without {POST}: a bundle holds its draft as {POST} beside the files it names"
        )),
        Err(Read::Busy(_)) => Err(
            "a file in it is still open for writing (or cannot be read for now); try again when it is complete"
                .into(),
        ),
        Err(Read::Gone) => Err("no such folder".into()),
        Err(Read::Ready(..) | Read::Stuck | Read::Unfinished(..) | Read::Continued(..)) => {
            unreachable!("gather does not return these")
        }
    }
}

const LINKED: &str = "the bundle folder is a symbolic link, and links are not followed: put the folder itself in the queue folder";

type Gathered = (Draft, Snapshot, Vec<String>);

fn gather(path: &Path, config: &Config, renamed_in: bool, fix: bool) -> Result<Gathered, Read> {
    let settle = config.watcher.settle_time;
    match std::fs::symlink_metadata(path) {
        Err(_) => return Err(Read::Gone),
        Ok(m) if m.file_type().is_symlink() => return Err(Read::Bad(LINKED.into(), None)),
        Ok(_) => {}
    }
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Read::Gone,
            Some(libc::ELOOP) => Read::Bad(LINKED.into(), None),
            _ if for_now(&e) => read_later(path, &format!("cannot open the bundle folder: {e}")),
            _ => Read::Bad(format!("cannot open the bundle folder: {e}"), None),
        })?;
    let dir_meta = dir.metadata().map_err(|e| match for_now(&e) {
        true => read_later(path, &format!("cannot read the bundle folder: {e}")),
        false => Read::Bad(format!("cannot read the bundle folder: {e}"), None),
    })?;
    let mut snapshot: Snapshot = vec![(path.to_path_buf(), Seen::of(&dir_meta))];

    let post = match open_beneath(&dir, &[POST]) {
        Opened::File(f) => f,
        Opened::Missing => return Err(Read::NoPost),
        Opened::ForNow(why) => return Err(read_later(path, &format!("{POST}: {why}"))),
        Opened::Bad(why) => return Err(Read::Bad(format!("{POST}: {why}"), None)),
    };
    let cap = config.watcher.max_draft_size;
    checked(&post, Some(cap)).map_err(|why| Read::Bad(format!("{POST}: {why}"), None))?;
    let (bytes, after) = when_complete(
        &post,
        settle,
        renamed_in,
        fix,
        |f| read_capped(f, cap).map_err(|e| e.of_file(POST).into_read(path)),
        drop,
    )?;
    if after.len() != bytes.len() as u64 {
        return Err(Read::Busy(settle));
    }
    let written = after.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if let Some(why) = super::written_on_a_full_disk(&post, written, config.watcher.incomplete_wait)
    {
        return Err(Read::Bad(format!("{POST}: {why}"), None));
    }
    snapshot.push((path.join(POST), Seen::of(&after)));
    let stem = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut draft, named) = draft::parse_bundle(&bytes, &stem, config)
        .map_err(|e| Read::Bad(e.to_string(), Some(snapshot.clone())))?;
    // The folder by its inode only: its times change with any name made in it (an editor's
    // swap file, a file manager's), which drops nothing. Saving `post.md` again does.
    draft.source_stamp = Some(format!(
        "{}+{}",
        dir_meta.ino(),
        super::source_stamp(&after)
    ));
    draft.renamed_in = renamed_in;
    let Some(named) = named else {
        return Ok((draft, snapshot, Vec::new()));
    };

    // Every file there before any is copied: a bundle still arriving costs no copies.
    let mut files = Vec::new();
    for (nf, kind) in named.files() {
        let bad = |why: String| Read::Bad(format!("{}: {why}", nf.file), Some(snapshot.clone()));
        let parts = draft::bundle_path(&nf.file).map_err(bad)?;
        let file = match open_beneath(&dir, &parts) {
            Opened::File(f) => f,
            Opened::Missing => {
                let quiet = quiet_for(path);
                if renamed_in || quiet >= settle {
                    return Err(bad(format!(
                        "named in {POST} but not in the bundle folder; add it, or fix the name"
                    )));
                }
                return Err(Read::Busy(settle - quiet));
            }
            Opened::ForNow(why) => return Err(read_later(path, &format!("{}: {why}", nf.file))),
            Opened::Bad(why) => return Err(bad(why)),
        };
        checked(&file, None).map_err(bad)?;
        files.push((nf, kind, file));
    }
    // A copy still under way may be writing files the draft does not name: moving the folder
    // now would cut it short.
    if fix {
        if let Some(wait) = still_written(path, settle, renamed_in) {
            return Err(Read::Busy(wait));
        }
    }
    let mut assets: Vec<Asset> = Vec::new();
    let mut found = Vec::new();
    // Files this intake put in the store are taken out again if the bundle is not taken.
    let mut created = Created {
        config,
        sha256s: Vec::new(),
    };
    for (nf, kind, file) in files {
        let with_snapshot = |r: Read, snapshot: &Snapshot| match r {
            Read::Bad(why, None) => {
                Read::Bad(format!("{}: {why}", nf.file), Some(snapshot.clone()))
            }
            other => other,
        };
        let (fixed, after) = when_complete(&file, settle, renamed_in, fix, |f| {
            if fix {
                media::fix(config, f, kind, &nf.file, nf.alt.clone()).map_err(|e| match e {
                    media::FixError::Refused(why) => Read::Bad(why, None),
                    media::FixError::Store(e) => {
                        tracing::error!(error = %e, "cannot keep a bundle's file in the media store; the bundle stays in the queue folder and is tried again");
                        Read::Busy(STORE_RETRY.max(settle))
                    }
                    media::FixError::Again(why) => {
                        tracing::warn!(file = %super::shown(&nf.file), error = %why, "cannot check a bundle's file this time; the bundle stays in the queue folder and is tried again");
                        Read::Busy(STORE_RETRY.max(settle))
                    }
                })
            } else {
                media::inspect(&config.media, f, kind, &nf.file, nf.alt.clone())
                    .map_err(|why| Read::Bad(why, None))
            }
        }, |fixed: media::Fixed| {
            if fixed.created {
                media::discard(config, &fixed.asset.sha256);
            }
        })
        .map_err(|r| with_snapshot(r, &snapshot))?;
        snapshot.push((path.join(&nf.file), Seen::of(&after)));
        let media::Fixed {
            asset,
            found: what,
            created: new,
        } = fixed;
        if new {
            created.sha256s.push(asset.sha256.clone());
        }
        found.push(format!(
            "{}: {what}, {} bytes, sha256 {}",
            nf.file, asset.bytes, asset.sha256
        ));
        assets.push(asset);
    }
    // One asset named twice in a multi-image post: LinkedIn's handling is undocumented, and
    // it is more likely a slip than meant.
    if assets.len() > 1 {
        for (i, a) in assets.iter().enumerate() {
            if let Some(first) = assets[..i].iter().find(|b| b.sha256 == a.sha256) {
                let why = if first.file == a.file {
                    format!("{} is named twice; name each image once", a.file)
                } else {
                    format!(
                        "{} and {} hold the same picture (the same bytes); name each image once",
                        first.file, a.file
                    )
                };
                return Err(Read::Bad(why, Some(snapshot)));
            }
        }
    }
    created.sha256s.clear();
    draft.content = Some(named.into_content(assets));
    Ok((draft, snapshot, found))
}

/// The files one bundle's intake created in the media store; discarded on drop unless
/// cleared (the bundle was taken). Nothing else can name them yet: a file another draft
/// of the same scan fixed first was not created here.
struct Created<'a> {
    config: &'a Config,
    sha256s: Vec<String>,
}

impl Drop for Created<'_> {
    fn drop(&mut self) {
        for sha in &self.sha256s {
            media::discard(self.config, sha);
        }
    }
}

/// Runs `work` on `file` once nobody is writing it: under a read lease, or (where leases are
/// unavailable) once unchanged for the settle time and still unchanged after `work`. Without
/// `wait` (`lipost validate`: the author asks now) at once. Work whose file turns out to have
/// changed under it is handed to `undo` (a copy made into the media store is taken out).
fn when_complete<T>(
    file: &File,
    settle: Duration,
    renamed_in: bool,
    wait: bool,
    work: impl FnOnce(&File) -> Result<T, Read>,
    undo: impl FnOnce(T),
) -> Result<(T, std::fs::Metadata), Read> {
    let meta = |f: &File| {
        f.metadata()
            .map_err(|e| Read::Bad(format!("cannot read its metadata: {e}"), None))
    };
    let before = meta(file)?;
    if !wait {
        let out = work(file)?;
        return Ok((out, meta(file)?));
    }
    match lease::try_read(file) {
        lease::Outcome::Held(lease) => {
            let out = work(file)?;
            let after = meta(file)?;
            // Copying a large file can outlast the kernel's lease-break time, after which a
            // writer gets in: what was copied may be half old, half new. Then it is not taken
            // (the copy is undone), and looked at again once the writer is done.
            if !lease.intact() || changed(&before, &after) {
                undo(out);
                return Err(Read::Busy(settle));
            }
            Ok((out, after))
        }
        lease::Outcome::Busy => Err(Read::Busy(settle)),
        lease::Outcome::Unavailable(e) => {
            lease::note_rule(lease::Rule::Settle(e), settle);
            if !renamed_in {
                let mtime = before.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                match super::at_rest(mtime, settle) {
                    super::Rest::Settled | super::Rest::FarFuture => {}
                    super::Rest::Ahead(ahead) => return Err(Read::Busy(ahead + settle)),
                    super::Rest::Wait(wait) => return Err(Read::Busy(wait)),
                }
            }
            let out = work(file)?;
            let after = meta(file)?;
            if changed(&before, &after) {
                undo(out);
                return Err(Read::Busy(settle));
            }
            Ok((out, after))
        }
    }
}

/// Whether a file changed between two looks: size, modification or status-change time.
fn changed(before: &std::fs::Metadata, after: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    after.len() != before.len()
        || after.modified().ok() != before.modified().ok()
        || (after.ctime(), after.ctime_nsec()) != (before.ctime(), before.ctime_nsec())
}

/// A regular file with one name, within `cap` when given (checked on the descriptor).
fn checked(file: &File, cap: Option<u64>) -> Result<(), String> {
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read its metadata: {e}"))?;
    not_regular(&meta)?;
    if meta.nlink() > 1 {
        return Err(format!(
            "it has {} hard links (it is also elsewhere), and linked files are not taken: put a copy in the bundle",
            meta.nlink()
        ));
    }
    if let Some(cap) = cap.filter(|c| meta.len() > *c) {
        return Err(super::too_large(meta.len(), cap));
    }
    Ok(())
}

enum Opened {
    File(File),
    Missing,
    /// Not opened for a reason that says nothing about the file (see [`for_now`]).
    ForNow(String),
    Bad(String),
}

/// Why `name` under the folder `base` is not a regular file, read without following a link
/// or opening it; `None` for a regular file, or for one not there (the open says so).
fn not_a_file_at(base: std::os::fd::RawFd, name: &CString) -> Option<String> {
    // SAFETY: fstatat with a valid descriptor and a NUL-terminated name, writing into `st`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatat(base, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if rc != 0 {
        return None;
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Some(
            "a symbolic link, and links are not followed: put the file itself in the bundle".into(),
        );
    }
    not_a_file(st.st_mode).map(|what| format!("{what}, not a regular file"))
}

/// Opens `parts` beneath `dir`, one component at a time, none followed if it is a link;
/// the last without blocking (a fifo) and read-only.
fn open_beneath(dir: &File, parts: &[&str]) -> Opened {
    let mut at: Option<OwnedFd> = None;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let Ok(name) = CString::new(*part) else {
            return Opened::Bad("the name holds a NUL byte".into());
        };
        let flags = libc::O_RDONLY
            | libc::O_NOFOLLOW
            | libc::O_CLOEXEC
            | if last {
                libc::O_NONBLOCK | libc::O_NOCTTY
            } else {
                libc::O_DIRECTORY
            };
        let base = at.as_ref().map_or(dir.as_raw_fd(), |f| f.as_raw_fd());
        // Look before opening the file itself: opening a device can have effects of its own
        // (a tape rewinds, a watchdog arms). The descriptor is checked again once open.
        if last {
            if let Some(why) = not_a_file_at(base, &name) {
                return Opened::Bad(format!("{} is {why}", parts.join("/")));
            }
        }
        // SAFETY: openat with a valid descriptor and a NUL-terminated name; the result is
        // checked and owned at once.
        let fd = unsafe { libc::openat(base, name.as_ptr(), flags) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            let shown = parts[..=i].join("/");
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Opened::Missing,
                Some(libc::ELOOP) => Opened::Bad(format!(
                    "{shown} is a symbolic link, and links are not followed: put the file itself in the bundle"
                )),
                Some(libc::ENOTDIR) => Opened::Bad(format!(
                    "{shown} is not a folder (or is a link to one, and links are not followed)"
                )),
                _ if for_now(&e) => Opened::ForNow(format!("cannot open {shown}: {e}")),
                _ => Opened::Bad(format!("cannot open {shown}: {e}")),
            };
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        at = Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    match at {
        Some(fd) => Opened::File(File::from(fd)),
        None => Opened::Bad("names no file".into()),
    }
}

/// When any file in the bundle may still be written: one open for writing (no lease), or,
/// without leases, anything changed within the settle time. `None`: all at rest.
fn still_written(path: &Path, settle: Duration, renamed_in: bool) -> Option<Duration> {
    let mut files = Vec::new();
    walk(path, 4, &mut 4096, &mut |p, m| {
        if m.is_file() {
            files.push(p.to_path_buf());
        }
    });
    for f in files {
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&f)
        else {
            continue;
        };
        let wait = match lease::try_read(&file) {
            lease::Outcome::Held(_) => continue,
            lease::Outcome::Busy => Some(settle),
            lease::Outcome::Unavailable(_) => {
                let quiet = quiet_for(path);
                (!renamed_in && quiet < settle).then(|| settle - quiet)
            }
        };
        return wait;
    }
    None
}

/// Calls `each` on `path` and what is beneath it, at most `depth` levels and `budget` names
/// deep, never following a link.
fn walk(
    path: &Path,
    depth: usize,
    budget: &mut usize,
    each: &mut dyn FnMut(&Path, &std::fs::Metadata),
) {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return;
    };
    each(path, &m);
    if !m.is_dir() || depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for e in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        walk(&e.path(), depth - 1, budget, each);
    }
}

/// How long since anything in the bundle changed (its folder, its names, their contents),
/// looking at most a few levels and a few thousand names deep.
/// Times more than [`super::FAR_FUTURE`] ahead are passed over (see [`super::Rest`]): such
/// a file is at rest, and counting it would keep the bundle "busy" for days.
fn quiet_for(path: &Path) -> Duration {
    let now = SystemTime::now();
    let mut latest = SystemTime::UNIX_EPOCH;
    walk(path, 4, &mut 4096, &mut |_, m| {
        if let Ok(t) = m.modified() {
            if t.duration_since(now)
                .map_or(true, |ahead| ahead <= super::FAR_FUTURE)
            {
                latest = latest.max(t);
            }
        }
    });
    now.duration_since(latest).unwrap_or(Duration::ZERO)
}
