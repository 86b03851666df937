//! The media store and the checks on a bundle's files.
//!
//! Owns what LinkedIn accepts as an image, a document or a video, told from the bytes (magic
//! numbers, dimensions, frames, pages, length), never from the file name; and the
//! content-addressed store beside the database (`media/`, one file per SHA-256, mode 0600)
//! where intake fixes a bundle's bytes, as it fixes the commentary: what goes out is the copy,
//! so editing or deleting the bundle later changes nothing. Files are streamed, never held
//! whole in memory. The uploader reads assets back with [`open`].
//!
//! Must not decide which files a draft names (the draft does), open anything in the queue
//! folder by path (the watcher hands it open files), touch the database or the network.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{Config, Media};
use crate::content::{Asset, MediaKind};

mod ends;
pub mod pdf;

/// An image must have fewer pixels than this (LinkedIn's limit).
pub const MAX_PIXELS: u64 = 36_152_320;
pub const MAX_GIF_FRAMES: u64 = 250;
pub const MAX_PDF_PAGES: u32 = 300;
/// A video's size and length (LinkedIn's limits; the upper byte cap is `media.max_video_bytes`).
pub const MIN_VIDEO_BYTES: u64 = 75_000;
pub const MIN_VIDEO_SECONDS: f64 = 3.0;
pub const MAX_VIDEO_SECONDS: f64 = 30.0 * 60.0;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{sha256:?} is not a SHA-256 in lowercase hex")]
    BadName { sha256: String },
    #[error("media store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a file could not be fixed: the file's fault (refuse the draft, saying why), the
/// store's, or a check that could not run this time (keep the draft and try again later).
#[derive(Debug)]
pub enum FixError {
    Refused(String),
    Store(MediaError),
    Again(String),
}

/// Why [`check`] takes no file: refused for good (the draft is rejected, saying why), or not
/// checked this time (the PDF check was interrupted or could not start: try again later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotTaken {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Again(String),
}

/// The media store: `media/` beside the database.
pub fn dir(config: &Config) -> PathBuf {
    config
        .database
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("media")
}

/// Where the asset with this SH-256 (lowercase hex) is kept.
pub fn path(config: &Config, sha256: &str) -> Result<PathBuf, MediaError> {
    let hex = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex {
        return Err(MediaError::BadName {
            sha256: sha256.into(),
        });
    }
    Ok(dir(config).join(sha256))
}

/// Opens a stored asset for reading (for the uploader): the bytes fixed at intake.
pub fn open(config: &Config, sha256: &str) -> Result<File, MediaError> {
    let path = path(config, sha256)?;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|source| MediaError::Io { path, source })
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Pdf,
    /// An OLE compound file: DOC, PPT (or XLS, MSG, ...: looked into further).
    Ole,
    /// A ZIP archive: DOCX, PPTX (or any other: looked into further).
    Zip,
    /// ISO media with an `ftyp` box: MP4.
    Mp4,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "a JPEG image",
            Format::Png => "a PNG image",
            Format::Gif => "a GIF image",
            Format::Pdf => "a PDF document",
            Format::Ole => "an Office (OLE) file",
            Format::Zip => "a ZIP archive",
            Format::Mp4 => "an MP4 video",
        }
    }

    fn kind(self) -> MediaKind {
        match self {
            Format::Jpeg | Format::Png | Format::Gif => MediaKind::Image,
            Format::Pdf | Format::Ole | Format::Zip => MediaKind::Document,
            Format::Mp4 => MediaKind::Video,
        }
    }
}

/// The format by magic number.
pub fn sniff(head: &[u8]) -> Option<Format> {
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some(Format::Gif)
    } else if starts(b"%PDF-") {
        Some(Format::Pdf)
    } else if starts(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        Some(Format::Ole)
    } else if starts(b"PK\x03\x04") {
        Some(Format::Zip)
    } else if head.len() >= 8 && &head[4..8] == b"ftyp" && !is_quicktime(head) {
        Some(Format::Mp4)
    } else {
        None
    }
}

/// A QuickTime movie (`.mov`): ISO media too, but not the MP4 LinkedIn takes.
fn is_quicktime(head: &[u8]) -> bool {
    head.len() >= 12 && &head[4..8] == b"ftyp" && &head[8..12] == b"qt  "
}

fn what_it_is(head: &[u8]) -> String {
    match sniff(head) {
        Some(f) => f.name().to_string(),
        None if is_quicktime(head) => "a QuickTime movie (MOV; export it as MP4)".into(),
        None if head.is_empty() => "an empty file".into(),
        None if std::str::from_utf8(head).is_ok() => "text".into(),
        None => "no format LinkedIn takes".into(),
    }
}

/// What a kind may be, in words.
fn wanted(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "a JPEG, PNG or GIF image",
        MediaKind::Document => "a PDF, PPT, PPTX, DOC or DOCX document",
        MediaKind::Video => "an MP4 video",
    }
}

fn cap(kind: MediaKind, limits: &Media) -> (u64, &'static str) {
    match kind {
        MediaKind::Image => (limits.max_image_bytes, "media.max_image_bytes"),
        MediaKind::Document => (limits.max_document_bytes, "media.max_document_bytes"),
        MediaKind::Video => (limits.max_video_bytes, "media.max_video_bytes"),
    }
}

fn too_large(len: u64, kind: MediaKind, limits: &Media) -> Option<String> {
    let (cap, key) = cap(kind, limits);
    (len > cap).then(|| {
        format!(
            "it is {len} bytes; a {} may be at most {cap} bytes ({key})",
            kind.as_str()
        )
    })
}

/// Checks that `file` (read from its start) is what LinkedIn takes as `kind`, within the
/// configured caps; says what it found ("a PNG image, 640×480"). The error says what is
/// wrong and what to do.
pub fn check(kind: MediaKind, file: &File, limits: &Media) -> Result<String, NotTaken> {
    let (format, len) = format_of(kind, file, limits).map_err(NotTaken::Refused)?;
    let refused = NotTaken::Refused;
    match format {
        Format::Jpeg | Format::Png | Format::Gif => check_image(format, file).map_err(refused),
        Format::Pdf => pdf::check(file),
        Format::Ole => check_ole(file).map_err(refused),
        Format::Zip => check_office_zip(file).map_err(refused),
        Format::Mp4 => check_video(file, len).map_err(refused),
    }
}

/// The file's format, if it is one LinkedIn takes for `kind` at its size, and its length.
fn format_of(kind: MediaKind, file: &File, limits: &Media) -> Result<(Format, u64), String> {
    let mut file = file;
    let io = |e: std::io::Error| format!("cannot read it: {e}");
    let len = file.metadata().map_err(io)?.len();
    if let Some(why) = too_large(len, kind, limits) {
        return Err(why);
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut head = Vec::with_capacity(16);
    Read::by_ref(&mut file)
        .take(16)
        .read_to_end(&mut head)
        .map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let format = match sniff(&head) {
        Some(f) if f.kind() == kind => f,
        _ => {
            return Err(format!(
                "it is {}, not {}: the format is read from the bytes, not the file name",
                what_it_is(&head),
                wanted(kind)
            ))
        }
    };
    Ok((format, len))
}

fn check_image(format: Format, mut file: &File) -> Result<String, String> {
    let size = imagesize::reader_size(BufReader::new(file)).map_err(|e| {
        format!(
            "{}, but its size cannot be read ({e}): is it damaged?",
            format.name()
        )
    })?;
    let pixels = size.width as u64 * size.height as u64;
    if pixels >= MAX_PIXELS {
        return Err(format!(
            "{}×{} is {pixels} pixels; LinkedIn takes images of fewer than {MAX_PIXELS}: scale it down",
            size.width, size.height
        ));
    }
    match format {
        Format::Png => ends::png(file)?,
        Format::Jpeg => ends::jpeg(file)?,
        // Its frames are walked below; a file cut inside one is refused there.
        _ => {}
    }
    let mut found = format!("{}, {}×{}", format.name(), size.width, size.height);
    if format == Format::Gif {
        file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        let frames = gif_frames(&mut BufReader::new(file)).map_err(|e| {
            format!("a GIF image, but its frames cannot be read ({e}): is it damaged?")
        })?;
        if frames > MAX_GIF_FRAMES {
            return Err(format!(
                "a GIF of {frames} frames; LinkedIn takes at most {MAX_GIF_FRAMES}: shorten it, or post it as a video"
            ));
        }
        found.push_str(&format!(", {frames} frames"));
    }
    Ok(found)
}

/// Counts a GIF's frames by walking its blocks, without decoding any.
fn gif_frames(r: &mut impl BufRead) -> std::io::Result<u64> {
    fn byte(r: &mut impl Read) -> std::io::Result<u8> {
        let mut b = [0u8];
        r.read_exact(&mut b)?;
        Ok(b[0])
    }
    fn skip(r: &mut impl Read, n: u64) -> std::io::Result<()> {
        let skipped = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
        if skipped < n {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
    fn sub_blocks(r: &mut impl Read) -> std::io::Result<()> {
        loop {
            match byte(r)? {
                0 => return Ok(()),
                n => skip(r, n.into())?,
            }
        }
    }
    let table = |packed: u8| {
        if packed & 0x80 != 0 {
            3u64 << ((packed & 7) + 1)
        } else {
            0
        }
    };
    let mut screen = [0u8; 13];
    r.read_exact(&mut screen)?;
    skip(r, table(screen[10]))?;
    let mut frames = 0;
    loop {
        match byte(r) {
            Ok(0x21) => {
                byte(r)?;
                sub_blocks(r)?;
            }
            Ok(0x2C) => {
                frames += 1;
                let mut descriptor = [0u8; 9];
                r.read_exact(&mut descriptor)?;
                skip(r, table(descriptor[8]))?;
                byte(r)?; // LZW minimum code size
                sub_blocks(r)?;
            }
            // The trailer; some writers leave it out, and the frames are all there.
            Ok(0x3B) => return Ok(frames),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && frames > 0 => {
                return Ok(frames)
            }
            Err(e) => return Err(e),
            Ok(b) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("unknown block 0x{b:02X}"),
                ))
            }
        }
    }
}

fn check_ole(file: &File) -> Result<String, String> {
    let cf = cfb::CompoundFile::open(file).map_err(|e| {
        format!("an Office (OLE) file, but it cannot be read ({e}): is it damaged?")
    })?;
    if cf.is_stream("/WordDocument") {
        Ok("a Word document (DOC)".into())
    } else if cf.is_stream("/PowerPoint Document") {
        Ok("a PowerPoint presentation (PPT)".into())
    } else {
        Err("an Office file, but neither a Word document nor a PowerPoint presentation (an Excel sheet?): LinkedIn takes PDF, PPT, PPTX, DOC and DOCX".into())
    }
}

fn check_office_zip(file: &File) -> Result<String, String> {
    let zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| format!("a ZIP archive, but it cannot be read ({e}): is it damaged?"))?;
    let has = |name: &str| zip.file_names().any(|n| n == name);
    if !has("[Content_Types].xml") {
        return Err(
            "a ZIP archive, not an Office document: LinkedIn takes PDF, PPT, PPTX, DOC and DOCX"
                .into(),
        );
    }
    if has("word/document.xml") {
        Ok("a Word document (DOCX)".into())
    } else if has("ppt/presentation.xml") {
        Ok("a PowerPoint presentation (PPTX)".into())
    } else {
        Err("an Office document, but neither Word (DOCX) nor PowerPoint (PPTX) (an Excel sheet?): LinkedIn takes PDF, PPT, PPTX, DOC and DOCX".into())
    }
}

fn check_video(file: &File, len: u64) -> Result<String, String> {
    if len < MIN_VIDEO_BYTES {
        return Err(format!(
            "it is {len} bytes; LinkedIn takes videos of at least 75 KB ({MIN_VIDEO_BYTES} bytes)"
        ));
    }
    let movie = mp4parse::read_mp4(&mut BufReader::with_capacity(64 * 1024, file))
        .map_err(|e| format!("an MP4 video, but it cannot be read ({e:?}): is it damaged?"))?;
    // The movie lasts as long as its longest track.
    let seconds = movie
        .tracks
        .iter()
        .filter_map(|t| {
            let (d, s) = (t.duration?.0, t.timescale?.0);
            (s > 0).then(|| d as f64 / s as f64)
        })
        .fold(0.0, f64::max);
    if seconds <= 0.0 {
        return Err(
            "an MP4 video, but its length cannot be read: save it again as MP4 (not fragmented)"
                .into(),
        );
    }
    if !(MIN_VIDEO_SECONDS..=MAX_VIDEO_SECONDS).contains(&seconds) {
        return Err(format!(
            "a video of {seconds:.1} s; LinkedIn takes 3 s to 30 min"
        ));
    }
    Ok(format!("an MP4 video, {seconds:.1} s"))
}

/// A file checked (and, by [`fix`], kept in the store).
#[derive(Debug)]
pub struct Fixed {
    pub asset: Asset,
    /// What it was found to be ("a PNG image, 640×480").
    pub found: String,
    /// Whether this call put it in the store (it was not there before).
    pub created: bool,
}

/// Copies `src` (from its start) into the media store, streaming and hashing as it goes;
/// checks the copy (so what is checked is what goes out), and keeps it under its SHA-256:
/// the same bytes are kept once. `file` and `alt` are recorded in the [`Asset`].
pub fn fix(
    config: &Config,
    src: &File,
    kind: MediaKind,
    file: &str,
    alt: Option<String>,
) -> Result<Fixed, FixError> {
    let mut src = src;
    let refused = |why: String| FixError::Refused(why);
    let len = src
        .metadata()
        .map_err(|e| refused(format!("cannot read it: {e}")))?
        .len();
    if let Some(why) = too_large(len, kind, &config.media) {
        return Err(refused(why));
    }
    let dir = dir(config);
    let store_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FixError::Store(MediaError::Io { path, source })
    };
    std::fs::create_dir_all(&dir).map_err(store_err(&dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(store_err(&dir))?;
    let tmp = Staged::create(&dir).map_err(store_err(&dir))?;
    let mut out = &tmp.file;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    src.seek(SeekFrom::Start(0))
        .map_err(|e| refused(format!("cannot read it: {e}")))?;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(refused(format!("cannot read it: {e}"))),
        };
        copied += n as u64;
        if let Some(why) = too_large(copied, kind, &config.media) {
            return Err(refused(why));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(store_err(&tmp.path))?;
    }
    tmp.file.sync_all().map_err(store_err(&tmp.path))?;
    let found = check(kind, &tmp.file, &config.media).map_err(|e| match e {
        NotTaken::Refused(why) => refused(why),
        NotTaken::Again(why) => FixError::Again(why),
    })?;
    let sha256 = hex(hasher);
    let target = dir.join(&sha256);
    let created = std::fs::symlink_metadata(&target).is_err();
    if created {
        std::fs::rename(&tmp.path, &target).map_err(store_err(&target))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(store_err(&dir))?;
    }
    let asset = Asset {
        sha256,
        kind,
        bytes: copied,
        file: file.to_string(),
        alt,
    };
    Ok(Fixed {
        asset,
        found,
        created,
    })
}

/// Takes out of the store what a failed intake put there: no post names it.
pub fn discard(config: &Config, sha256: &str) {
    if let Ok(p) = path(config, sha256) {
        let _ = std::fs::remove_file(p);
    }
}

fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What [`fix`] would keep, without copying anything (for `lipost validate`): the file is
/// checked and hashed where it is.
pub fn inspect(
    limits: &Media,
    src: &File,
    kind: MediaKind,
    file: &str,
    alt: Option<String>,
) -> Result<Fixed, String> {
    let found = check(kind, src, limits).map_err(|e| match e {
        NotTaken::Refused(why) => why,
        NotTaken::Again(why) => format!("cannot be checked now ({why}): try again"),
    })?;
    let mut src = src;
    src.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read it: {e}"))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut src, &mut hasher).map_err(|e| format!("cannot read it: {e}"))?;
    let asset = Asset {
        sha256: hex(hasher),
        kind,
        bytes,
        file: file.to_string(),
        alt,
    };
    Ok(Fixed {
        asset,
        found,
        created: false,
    })
}

/// Removes what a crash left half-copied. Only the daemon writes the store, and one daemon
/// runs per database, so every temporary file found at its start is a leftover.
pub fn sweep(config: &Config) {
    let Ok(entries) = std::fs::read_dir(dir(config)) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(INCOMING) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

const INCOMING: &str = ".incoming-";

/// A file being written into the store under a temporary name; removed unless renamed.
struct Staged {
    path: PathBuf,
    file: File,
}

impl Staged {
    fn create(dir: &Path) -> std::io::Result<Staged> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{INCOMING}{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        // Whatever the umask: only the daemon reads what it will upload.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(Staged { path, file })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // After a rename this name is gone (or, deduplicated, still the temporary copy).
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_their_first_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(Format::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(sniff(b"GIF89a...."), Some(Format::Gif));
        assert_eq!(sniff(b"%PDF-1.7"), Some(Format::Pdf));
        assert_eq!(sniff(b"\0\0\0\x20ftypisom"), Some(Format::Mp4));
        assert_eq!(sniff(b"PK\x03\x04"), Some(Format::Zip));
        assert_eq!(sniff(b"just text, named a.png"), None);
        assert_eq!(sniff(b"\0\0\0\x14ftypqt  \0\0\0\0"), None);
        assert!(what_it_is(b"\0\0\0\x14ftypqt  \0\0\0\0").contains("QuickTime"));
        assert_eq!(what_it_is(b"hello"), "text");
    }

    #[test]
    fn gif_frames_are_counted_without_decoding() {
        let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
        gif.extend_from_slice(b"\x21\xf9\x04\x00\x00\x00\x00\x00");
        for _ in 0..3 {
            gif.extend_from_slice(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
        }
        gif.push(0x3b);
        assert_eq!(gif_frames(&mut &gif[..]).unwrap(), 3);
        assert!(gif_frames(&mut &b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x99"[..]).is_err());
    }

    /// A PDF by hand: a catalog, then `nodes` (each a dictionary body), in order from object 2.
    fn pdf_of(nodes: &[String]) -> File {
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = vec![out.len()];
        out.extend_from_slice(b"1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n");
        for (i, body) in nodes.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj{body}endobj\n", i + 2).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
        );
        for o in &offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer<</Size {}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n",
                offsets.len() + 1
            )
            .as_bytes(),
        );
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&out).unwrap();
        f
    }

    /// Review finding: a page tree 5,000 levels deep overflowed lopdf's recursive count (and
    /// aborted the daemon at every start). Checked on a thread with the blocking pool's 2 MiB.
    #[test]
    fn a_deep_page_tree_is_counted_without_recursion() {
        let depth = 5_000;
        let mut nodes: Vec<String> = (0..depth)
            .map(|i| format!("<</Type/Pages/Kids[{} 0 R]>>", i + 3))
            .collect();
        nodes.push("<</Type/Page>>".into());
        let f = pdf_of(&nodes);
        let r = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || check(MediaKind::Document, &f, &limits()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert!(r.is_ok(), "{r:?}");
    }

    /// Review finding: `/Count` is not trusted; 301 pages claiming one are 301.
    #[test]
    fn a_page_count_that_lies_is_not_believed() {
        let kids: Vec<String> = (0..301).map(|i| format!("{} 0 R", i + 3)).collect();
        let mut nodes = vec![format!("<</Type/Pages/Count 1/Kids[{}]>>", kids.join(" "))];
        nodes.extend((0..301).map(|_| "<</Type/Page/Parent 2 0 R>>".to_string()));
        let e = check(MediaKind::Document, &pdf_of(&nodes), &limits())
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 300 pages"), "{e}");
        let looped = pdf_of(&["<</Type/Pages/Kids[2 0 R]>>".to_string()]);
        let e = check(MediaKind::Document, &looped, &limits())
            .unwrap_err()
            .to_string();
        assert!(e.contains("loops"), "{e}");
    }

    fn limits() -> Media {
        Config::parse(crate::config::TEST_CONFIG, Path::new("/x/config.toml"))
            .unwrap()
            .media
    }

    fn zip_of(names: &[&str]) -> File {
        let f = tempfile::tempfile().unwrap();
        let mut w = zip::ZipWriter::new(&f);
        for n in names {
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            w.start_file(*n, opts).unwrap();
            w.write_all(b"<x/>").unwrap();
        }
        w.finish().unwrap();
        f
    }

    fn ole_of(stream: &str) -> File {
        let f = tempfile::tempfile().unwrap();
        let mut cf = cfb::CompoundFile::create(&f).unwrap();
        cf.create_stream(stream).unwrap().write_all(b"x").unwrap();
        cf.flush().unwrap();
        f
    }

    #[test]
    fn office_documents_are_told_by_their_parts() {
        let doc = |f: File| check(MediaKind::Document, &f, &limits()).map_err(|e| e.to_string());
        let ok = doc(zip_of(&["[Content_Types].xml", "word/document.xml"])).unwrap();
        assert!(ok.contains("DOCX"), "{ok}");
        let ok = doc(zip_of(&["[Content_Types].xml", "ppt/presentation.xml"])).unwrap();
        assert!(ok.contains("PPTX"), "{ok}");
        let e = doc(zip_of(&["[Content_Types].xml", "xl/workbook.xml"])).unwrap_err();
        assert!(e.contains("neither Word"), "{e}");
        let e = doc(zip_of(&["photo.jpg"])).unwrap_err();
        assert!(e.contains("not an Office document"), "{e}");
        assert!(doc(ole_of("/WordDocument")).unwrap().contains("(DOC)"));
        assert!(doc(ole_of("/PowerPoint Document"))
            .unwrap()
            .contains("(PPT)"));
        let e = doc(ole_of("/Workbook")).unwrap_err();
        assert!(e.contains("neither a Word document"), "{e}");
        // A document where an image is wanted: the bytes decide.
        let e = check(MediaKind::Image, &ole_of("/WordDocument"), &limits())
            .unwrap_err()
            .to_string();
        assert!(e.contains("an Office (OLE) file, not a JPEG"), "{e}");
    }

    #[test]
    fn byte_caps_come_from_the_config() {
        let mut l = limits();
        l.max_document_bytes = 10;
        let e = check(
            MediaKind::Document,
            &zip_of(&["[Content_Types].xml", "word/document.xml"]),
            &l,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("media.max_document_bytes"), "{e}");
    }

    #[test]
    fn store_names_are_hex_sha256_only() {
        let c = Config::parse(crate::config::TEST_CONFIG, Path::new("/srv/l/config.toml")).unwrap();
        assert!(path(&c, "../../etc/passwd").is_err());
        assert!(path(&c, &"A".repeat(64)).is_err());
        let p = path(&c, &"a".repeat(64)).unwrap();
        assert_eq!(p.parent().unwrap(), dir(&c));
    }
}
