//! Where drafts go once read: `accepted/` or `rejected/` (with `NAME.error` beside a refused
//! one). Owns the moves out of the queue folder and nothing else.
//!
//! The queue folder is writable by its whole group, so a member may rename `rejected/` and
//! put a folder, a link or a file of their own in its place, then plant links or FIFOs under
//! names lipost is about to write. So each destination is opened once per move without
//! following a link, checked to be a directory owned by lipost's user (or root), once per
//! batch of moves ([`Destinations`]), and from then on only its descriptor is used: a folder swapped under the name afterwards changes
//! nothing. The `.error` file is created only where no file of that name exists
//! (`O_EXCL`, no link followed, never blocking on a FIFO).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{file_name, shown};

/// The longest name [`free_name`] gives: `NAME.error` must fit in a file name too (255 bytes).
pub(super) const MAX_MOVED_NAME: usize = 255 - ".error".len();

/// The destination folders of one batch of moves, each opened and checked at its first use.
#[derive(Default)]
pub(super) struct Destinations {
    opened: Vec<(PathBuf, Result<Folder, String>)>,
}

impl Destinations {
    fn folder(&mut self, dir: &Path) -> &Result<Folder, String> {
        let i = match self.opened.iter().position(|(d, _)| d == dir) {
            Some(i) => i,
            None => {
                let opened = Folder::open(dir).map_err(|e| e.to_string());
                self.opened.push((dir.to_path_buf(), opened));
                self.opened.len() - 1
            }
        };
        &self.opened[i].1
    }

    /// Moves `path` into `dir` under a name not yet taken there; with `error`, writes
    /// `NAME.error` beside it first, readable by the folder's group whatever the umask.
    /// Whether the draft left the queue folder; if not, says so at ERROR.
    pub(super) fn move_to(&mut self, path: &Path, dir: &Path, error: Option<&str>) -> bool {
        match self.folder(dir) {
            Ok(folder) => move_into(folder, path, dir, error),
            Err(e) => {
                tracing::error!(file = %shown(&file_name(path)), to = %shown(&dir.display().to_string()), error = %e, "cannot move the draft out of the queue folder; it is left there and not taken again until it changes (fix the folder, then move or delete the draft by hand)");
                false
            }
        }
    }
}

fn move_into(folder: &Folder, path: &Path, dir: &Path, error: Option<&str>) -> bool {
    let name = file_name(path);
    // A refused draft's `NAME.error` must be free too: a name taken only by `.error` (a
    // folder planted there, say) would cost the draft its explanation.
    let taken = |n: &str| folder.has(n) || (error.is_some() && folder.has(&format!("{n}.error")));
    let Some(target) = free_name(&name, taken) else {
        tracing::error!(file = %shown(&name), to = %shown(&dir.display().to_string()), "cannot move the draft out of the queue folder: no free name there (can lipost read that folder?); it is left where it is");
        return false;
    };
    let explained = format!("{target}.error");
    if let Some(why) = error {
        let text = format!("{}: rejected: {why}\n", shown(&name));
        // Never a refused draft without its reason: if the reason cannot be written (a full
        // disk), the draft stays where its author left it, and the log says why.
        if let Err(e) = folder.write_error_file(&explained, &text) {
            tracing::error!(file = %shown(&name), reason = %why, error = %e, "cannot write the .error file, so the refused draft is left in the queue folder; it is not read again until it changes");
            return false;
        }
    }
    match folder.take(path, &target) {
        Ok(()) => true,
        Err(e) => {
            if error.is_some() {
                // Its explanation goes with it or not at all.
                let _ = folder.remove(&explained);
            }
            // rename(2) of a folder to another parent rewrites its `..`: it needs write
            // permission on the folder itself, which a bundle built with umask 022 by another
            // user does not give lipost's group.
            let what = if e.kind() == io::ErrorKind::PermissionDenied && path.is_dir() {
                "cannot move the bundle folder out of the queue folder: a folder can be moved only by a user who may write to it. Make it group-writable (`chmod g+w FOLDER`, or build bundles with `umask 002`); it is taken again once its permissions change"
            } else {
                "cannot move the draft out of the queue folder; it is left there and not taken again until it changes (move or delete it by hand)"
            };
            tracing::error!(file = %shown(&name), to = %shown(&dir.join(&target).display().to_string()), error = %e, "{what}");
            false
        }
    }
}

/// A destination folder, held by its descriptor.
struct Folder {
    dir: File,
}

impl Folder {
    fn open(dir: &Path) -> io::Result<Folder> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(dir)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a folder (a link or a file took its place): remove it and restart lipost, which makes it again", dir.display()),
                ),
                _ => e,
            })?;
        let owner = f.metadata()?.uid();
        // SAFETY: geteuid cannot fail and touches no memory.
        let me = unsafe { libc::geteuid() };
        if owner != me && owner != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} belongs to uid {owner}, not to lipost's user: someone replaced it; remove it and restart lipost, which makes it again", dir.display()),
            ));
        }
        Ok(Folder { dir: f })
    }

    /// Whether anything (a link included, not followed) is named `name` in the folder.
    fn has(&self, name: &str) -> bool {
        let Ok(c) = CString::new(name) else {
            return true;
        };
        // SAFETY: a valid descriptor, a NUL-terminated name, and a stat buffer we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::fstatat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT)
    }

    /// Renames `from` (in the queue folder) to `name` in this folder.
    fn take(&self, from: &Path, name: &str) -> io::Result<()> {
        let from = CString::new(from.as_os_str().as_bytes())?;
        let to = CString::new(name)?;
        // SAFETY: NUL-terminated names; AT_FDCWD for the source, our descriptor for the target.
        let r = unsafe {
            libc::renameat(
                libc::AT_FDCWD,
                from.as_ptr(),
                self.dir.as_raw_fd(),
                to.as_ptr(),
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Writes `name` aside and renames it in, so nobody reads a half-written explanation.
    /// Mode 0640 set after creation: the unit's `UMask=0077` would otherwise make it 0600,
    /// and the draft's author (in the folder's group) could not read why it was refused.
    fn write_error_file(&self, name: &str, text: &str) -> io::Result<()> {
        static STAGING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        // The staging name is short whatever the draft's: a long name must not cost the
        // reason. A name someone planted is skipped, never opened.
        let mut last = None;
        for _ in 0..8 {
            let n = STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let staging = format!(".lipost-{}-{n}.error.tmp", std::process::id());
            match self.create_new(&staging) {
                Ok(mut f) => {
                    let written = f
                        .set_permissions(std::fs::Permissions::from_mode(0o640))
                        .and_then(|()| f.write_all(text.as_bytes()))
                        .and_then(|()| self.rename_within(&staging, name));
                    if written.is_err() {
                        let _ = self.remove(&staging);
                    }
                    return written;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free staging name")))
    }

    fn create_new(&self, name: &str) -> io::Result<File> {
        let c = CString::new(name)?;
        let flags = libc::O_WRONLY
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_NOFOLLOW
            | libc::O_NONBLOCK
            | libc::O_CLOEXEC;
        // SAFETY: openat with a valid descriptor and a NUL-terminated name; the result is
        // owned at once.
        let fd = unsafe { libc::openat(self.dir.as_raw_fd(), c.as_ptr(), flags, 0o640) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Removes the file `name` (not a folder) from this folder.
    fn remove(&self, name: &str) -> io::Result<()> {
        let c = CString::new(name)?;
        // SAFETY: our descriptor and a NUL-terminated name.
        let r = unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn rename_within(&self, from: &str, to: &str) -> io::Result<()> {
        let (a, b) = (CString::new(from)?, CString::new(to)?);
        let fd = self.dir.as_raw_fd();
        // SAFETY: our descriptor on both sides and NUL-terminated names.
        let r = unsafe { libc::renameat(fd, a.as_ptr(), fd, b.as_ptr()) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// `name`, or `stem.N.ext` for the first N free (`taken` says which are not); the stem cut
/// short (at a character) where the name would be longer than [`MAX_MOVED_NAME`] bytes.
/// `None` after many taken names (a folder whose entries cannot be looked up at all).
fn free_name(name: &str, taken: impl Fn(&str) -> bool) -> Option<String> {
    if name.len() <= MAX_MOVED_NAME && !taken(name) {
        return Some(name.to_string());
    }
    let p = Path::new(name);
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = p
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .filter(|e| e.len() <= 16)
        .unwrap_or_default();
    let stem = if ext.is_empty() { name } else { &stem };
    (1u64..)
        .map(|n| {
            let suffix = format!(".{n}{ext}");
            let mut cut = MAX_MOVED_NAME.saturating_sub(suffix.len()).min(stem.len());
            while !stem.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}{suffix}", &stem[..cut])
        })
        .take(100_000)
        .find(|c| !taken(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_in(dir: &Path, name: &str) -> String {
        free_name(name, |n| dir.join(n).symlink_metadata().is_ok()).unwrap()
    }

    #[test]
    fn moved_names_leave_room_for_the_error_file() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{}.md", "é".repeat(126)); // 255 bytes
        let first = free_in(dir.path(), &long);
        assert!(first.len() <= MAX_MOVED_NAME, "{}", first.len());
        assert!(first.ends_with(".1.md"), "{first}");
        std::fs::write(dir.path().join(&first), "x").unwrap();
        std::fs::write(dir.path().join(format!("{first}.error")), "x").unwrap();
        let second = free_in(dir.path(), &long);
        assert_ne!(second, first);
        assert!(second.len() <= MAX_MOVED_NAME);
        // A name that fits is kept.
        let fits = format!("{}.md", "a".repeat(MAX_MOVED_NAME - 3));
        assert_eq!(free_in(dir.path(), &fits), fits);
    }

    #[test]
    fn free_name_never_overwrites_even_a_dangling_link() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(free_in(dir.path(), "a.md"), "a.md");
        std::fs::write(dir.path().join("a.md"), "x").unwrap();
        assert_eq!(free_in(dir.path(), "a.md"), "a.1.md");
        let folder = Folder::open(dir.path()).unwrap();
        std::os::unix::fs::symlink("/nowhere", dir.path().join("b.md")).unwrap();
        assert!(folder.has("b.md") && folder.has("a.md") && !folder.has("c.md"));
        // A folder where nothing can be looked up: given up, not looped on for ever.
        assert_eq!(free_name("a.md", |_| true), None);
    }

    #[test]
    fn a_draft_with_a_long_name_is_rejected_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("q");
        let rejected = dir.path().join("rejected");
        std::fs::create_dir_all(&queue).unwrap();
        std::fs::create_dir_all(&rejected).unwrap();
        let name = format!("{}.md", "b".repeat(252));
        std::fs::write(queue.join(&name), "x").unwrap();
        assert!(Destinations::default().move_to(&queue.join(&name), &rejected, Some("because")));
        let listed: Vec<String> = std::fs::read_dir(&rejected)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let error = listed
            .iter()
            .find(|n| n.ends_with(".error"))
            .expect("an .error file");
        let meta = std::fs::metadata(rejected.join(error)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert!(std::fs::read_to_string(rejected.join(error))
            .unwrap()
            .contains("because"));
        assert_eq!(listed.len(), 2, "{listed:?}");
    }

    #[test]
    fn a_destination_replaced_by_a_link_or_a_file_is_refused_and_nothing_moves() {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("q");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&queue).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(queue.join("a.md"), "x").unwrap();
        let rejected = queue.join("rejected");
        std::os::unix::fs::symlink(&elsewhere, &rejected).unwrap();
        assert!(!Destinations::default().move_to(&queue.join("a.md"), &rejected, Some("why")));
        assert!(queue.join("a.md").exists());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        std::fs::remove_file(&rejected).unwrap();
        std::fs::write(&rejected, "a file").unwrap();
        assert!(!Destinations::default().move_to(&queue.join("a.md"), &rejected, Some("why")));
        assert!(queue.join("a.md").exists());
    }

    #[test]
    fn a_planted_link_or_fifo_at_the_staging_name_is_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let folder = Folder::open(dir.path()).unwrap();
        // The staging names this process uses first, planted as links and FIFOs.
        let next: Vec<String> = (0..64u64)
            .map(|k| format!(".lipost-{}-{k}.error.tmp", std::process::id()))
            .collect();
        for (i, n) in next.iter().enumerate() {
            let p = dir.path().join(n);
            if i % 2 == 0 {
                let _ = std::os::unix::fs::symlink(&victim, &p);
            } else {
                let c = CString::new(p.as_os_str().as_bytes()).unwrap();
                // SAFETY: a NUL-terminated path.
                unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
            }
        }
        // Either written under a fresh name or refused; never through a link, never blocked.
        let _ = folder.write_error_file("real.error", "the reason\n");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
