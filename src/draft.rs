//! Drafts: the file format users write, parsed and validated into a [`Draft`].
//!
//! A draft is UTF-8 text: optional TOML front matter between `+++` lines, then the post text.
//! Intended front matter is never taken as text: a first line that looks like a fence but is
//! not `+++`, YAML `---` front matter, and a text line that sets a front-matter key are errors;
//! invisible format characters (a BOM, zero-width spaces) do not hide a fence or a key.
//! Control characters are refused, and so is a `publish_at` that cannot be what the author
//! meant: ambiguous in local time, more than [`MAX_AHEAD_YEARS`] ahead, or further in the
//! past than `retry.max_lateness`.
//! Content keys (`images`, `document`, `video`, `article`, `poll`, `first_comment`, `edit`)
//! are checked against LinkedIn's limits here; keys that name files come back as [`Named`]
//! from [`parse_bundle_at`] (a bundle's `post.md`) for intake to read, and are refused in a
//! single-file draft ([`parse_at`]).
//! [`parse_at`] is pure: bytes, the config and the current time in, a `Draft` or a
//! [`DraftError`] that says what is wrong and where, out. [`parse`] only adds the clock. It
//! never touches the file system, the store or the network.

use chrono::{DateTime, LocalResult, Months, NaiveDateTime, TimeZone, Utc};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{AccountKind, Config, COMMENTARY_LIMIT};
use crate::content::{Asset, Content, MediaKind, PollDuration};
use crate::linkedin::ltf;

/// Who may see the post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Public,
    Connections,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "PUBLIC",
            Visibility::Connections => "CONNECTIONS",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "PUBLIC" => Some(Visibility::Public),
            "CONNECTIONS" => Some(Visibility::Connections),
            _ => None,
        }
    }
}

/// A validated draft, ready for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub id: String,
    pub account: String,
    /// `None`: as soon as possible, or the next free slot when `next_slot`.
    pub publish_at: Option<DateTime<Utc>>,
    /// Take the earliest free posting slot of the account.
    pub next_slot: bool,
    pub visibility: Visibility,
    /// The post text as the author wrote it.
    pub text: String,
    /// The text escaped per LinkedIn's Little Text Format: the exact bytes sent.
    pub commentary: String,
    /// Attachments, link card or poll (a bundle's front matter); `None` for a text post.
    pub content: Option<crate::content::Content>,
    /// `first_comment`: posted as the author once the post is published.
    pub first_comment: Option<String>,
    /// `edit = true`: change the text of the published post with this id.
    pub edit: bool,
    /// The file began with front matter. A file without any may be the tail of a draft
    /// written in steps (see `watcher::continued`).
    pub front_matter: bool,
    /// Which file this was, as the watcher read it (device, inode, size, modification and
    /// change times): the same file found again, never moved out (a crash, or a folder it
    /// could not be moved to), is not a new drop. Set by the watcher, not by parsing.
    pub source_stamp: Option<String>,
    /// The file (or bundle folder) arrived by a rename the watcher saw happen: a drop by
    /// someone, never a leftover, even if its stamp is the stored one (a folder moved out
    /// and back keeps its inode, and `post.md` its times). Set by the watcher.
    pub renamed_in: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    #[error("not UTF-8: invalid byte at offset {offset} (line {line}); save the file as UTF-8")]
    NotUtf8 { offset: usize, line: usize },
    #[error("control character U+{code:04X} at offset {offset} (line {line}): it would be posted invisibly; remove it (only tab and line breaks may appear)")]
    ControlChar {
        code: u32,
        offset: usize,
        line: usize,
    },
    #[error("front matter `{key}`: control character U+{code:04X}, written as an escape: it would be posted invisibly; remove it (only tab and line breaks may appear)")]
    ControlInValue { key: String, code: u32 },
    #[error(
        "front matter opened with `+++` on line {line} is never closed: add a line `+++` after it"
    )]
    UnclosedFrontMatter { line: usize },
    #[error("line {line} ({found:?}) looks like a front matter fence but is not one: front matter goes between two lines of exactly `+++`; if this is post text, start the file with other text")]
    FenceLike { line: usize, found: String },
    #[error("front matter between `---` lines (YAML) is not read; lipost reads TOML between `+++` lines. Write it as:\n{toml}\n{}(If the first `---` is meant as text, start the file with other text.)", left_out(.dropped))]
    YamlFrontMatter { toml: String, dropped: Vec<String> },
    #[error("line {line} of the post text sets `{key}`, which belongs in the front matter: put it between `+++` lines at the top of the file (or reword the line so it does not start with `{key}:` or `{key} =`)")]
    MisplacedKey { key: &'static str, line: usize },
    #[error("front matter, line {line}: {message}")]
    FrontMatter { line: usize, message: String },
    #[error("the post text is empty (white space or invisible characters only): write the text after the front matter")]
    Empty,
    #[error("the post text is {chars} characters after LinkedIn escaping; LinkedIn allows {limit}: shorten it by {over}", over = chars - limit)]
    TooLong { chars: usize, limit: usize },
    #[error("account {name:?} is not in the config (known: {known}); add [accounts.{name}] or fix `account`")]
    UnknownAccount { name: String, known: String },
    #[error("no account: set `account = \"NAME\"` in the front matter or `default_account` in the config")]
    NoAccount,
    #[error("id {id:?}: use 1 to 128 letters, digits, '-', '_' or '.' (set `id = \"...\"` in the front matter or rename the file)")]
    BadId { id: String },
    #[error("publish_at = {value:?}: {why}")]
    BadTime { value: String, why: String },
    #[error("visibility = {value:?}: {why}")]
    BadVisibility { value: String, why: String },
    #[error("`{key}`: {why}")]
    Content { key: &'static str, why: String },
    #[error("the draft sets both `{first}` and `{second}`: a post carries one kind of content (images, document, video, article or poll); keep one")]
    MixedContent {
        first: &'static str,
        second: &'static str,
    },
    #[error("`{key}` names files: put the draft and its files in a folder (a bundle), the draft as `post.md` beside them, and drop the folder in the queue folder")]
    NeedsBundle { key: &'static str },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: Option<String>,
    account: Option<String>,
    publish_at: Option<toml::Value>,
    visibility: Option<String>,
    images: Option<Vec<ImageItem>>,
    document: Option<DocumentTable>,
    video: Option<VideoTable>,
    article: Option<ArticleTable>,
    poll: Option<PollTable>,
    first_comment: Option<String>,
    edit: Option<bool>,
}

/// `images = ["a.png", { file = "b.jpg", alt = "..." }]`: a bare name or a table.
#[derive(Debug)]
struct ImageItem(NamedFile);

impl<'de> Deserialize<'de> for ImageItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ImageItem;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a file name (\"a.png\") or a table ({ file = \"a.png\", alt = \"...\" })",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ImageItem, E> {
                Ok(ImageItem(NamedFile {
                    file: v.to_string(),
                    alt: None,
                }))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ImageItem, A::Error> {
                let t = ImageTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ImageItem(NamedFile {
                    file: t.file,
                    alt: t.alt,
                }))
            }
        }
        d.deserialize_any(Visit)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageTable {
    file: String,
    alt: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentTable {
    file: String,
    title: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VideoTable {
    file: String,
    title: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArticleTable {
    url: String,
    title: Option<String>,
    description: Option<String>,
    thumbnail: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollTable {
    question: String,
    options: Vec<String>,
    duration: String,
}

/// A file a bundle's front matter names (a path inside the bundle), with its alt text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFile {
    pub file: String,
    pub alt: Option<String>,
}

/// Content whose files are still to be read: what a bundle's front matter names. Intake
/// turns it into a [`Content`] once the files are checked and fixed in the media store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Images(Vec<NamedFile>),
    Document {
        file: NamedFile,
        title: String,
    },
    Video {
        file: NamedFile,
        title: Option<String>,
    },
    /// A link card with a thumbnail (without one, it needs no file: it is [`Content`] at once).
    Article {
        url: String,
        title: Option<String>,
        description: Option<String>,
        thumbnail: NamedFile,
    },
}

impl Named {
    /// The front-matter key, for messages.
    pub fn key(&self) -> &'static str {
        match self {
            Named::Images(_) => "images",
            Named::Document { .. } => "document",
            Named::Video { .. } => "video",
            Named::Article { .. } => "article",
        }
    }

    /// Every file named, with what it must be, in order.
    pub fn files(&self) -> Vec<(&NamedFile, MediaKind)> {
        match self {
            Named::Images(files) => files.iter().map(|f| (f, MediaKind::Image)).collect(),
            Named::Document { file, .. } => vec![(file, MediaKind::Document)],
            Named::Video { file, .. } => vec![(file, MediaKind::Video)],
            Named::Article { thumbnail, .. } => vec![(thumbnail, MediaKind::Image)],
        }
    }

    /// The content, given the asset each file became (in the order of [`Named::files`]).
    pub fn into_content(self, mut assets: Vec<Asset>) -> Content {
        match self {
            Named::Images(_) => Content::Images { images: assets },
            Named::Document { title, .. } => Content::Document {
                asset: assets.remove(0),
                title,
            },
            Named::Video { title, .. } => Content::Video {
                asset: assets.remove(0),
                title,
            },
            Named::Article {
                url,
                title,
                description,
                ..
            } => Content::Article {
                url,
                title,
                description,
                thumbnail: Some(assets.remove(0)),
            },
        }
    }
}

/// LinkedIn's limits on what a draft's content keys may hold.
pub const MAX_IMAGES: usize = 20;
pub const MAX_ALT_TEXT: usize = 4086;
pub const MAX_POLL_QUESTION: usize = 140;
pub const MAX_POLL_OPTION: usize = 30;

/// How far ahead a `publish_at` may be. Further is a typo (a year 2062 for 2026), and a time
/// past year 9999 cannot even be stored.
pub const MAX_AHEAD_YEARS: u32 = 10;

/// [`parse_at`] now.
pub fn parse(bytes: &[u8], stem: &str, config: &Config) -> Result<Draft, DraftError> {
    parse_at(bytes, stem, config, Utc::now())
}

/// Whether the file's first visible line is a `+++` fence, closed or not yet: what a draft
/// starts with and the rest of one written in steps (`>>`) lacks. A `---` or fence-like
/// line (a Markdown rule in a text) does not count: a rest may well start with one.
pub fn front_matter_attempted(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    matches!(
        split_front_matter(text),
        Ok((Some(_), _)) | Err(DraftError::UnclosedFrontMatter { .. })
    )
}

/// Parses and validates a single-file draft as of `now`. `stem` is the file name without its
/// extension: the default id. Keys that name files are refused: those need a bundle.
pub fn parse_at(
    bytes: &[u8],
    stem: &str,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Draft, DraftError> {
    match parse_bundle_at(bytes, stem, config, now)? {
        (_, Some(named)) => Err(DraftError::NeedsBundle { key: named.key() }),
        (d, None) => Ok(d),
    }
}

/// [`parse_bundle_at`] now.
pub fn parse_bundle(
    bytes: &[u8],
    stem: &str,
    config: &Config,
) -> Result<(Draft, Option<Named>), DraftError> {
    parse_bundle_at(bytes, stem, config, Utc::now())
}

/// Parses a bundle's `post.md` (`stem`: the folder's name, the default id). Content that
/// needs no file is in the draft already; the files named come back as [`Named`], for intake
/// to read from the bundle.
pub fn parse_bundle_at(
    bytes: &[u8],
    stem: &str,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<(Draft, Option<Named>), DraftError> {
    let line_of = |offset: usize| bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        DraftError::NotUtf8 {
            offset,
            line: line_of(offset),
        }
    })?;
    if let Some((offset, c)) = text.char_indices().find(|&(_, c)| is_forbidden_control(c)) {
        return Err(DraftError::ControlChar {
            code: c as u32,
            offset,
            line: line_of(offset),
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (fm, body) = split_front_matter(text)?;
    let front_matter = fm.is_some();
    let body_first_line = text[..text.len() - body.len()].matches('\n').count() + 1;
    if let Some((key, line)) = misplaced_key(body, body_first_line) {
        return Err(DraftError::MisplacedKey { key, line });
    }
    let fm = match fm {
        Some((fm_text, first_line)) => parse_front_matter(fm_text, first_line)?,
        None => FrontMatter {
            id: None,
            account: None,
            publish_at: None,
            visibility: None,
            images: None,
            document: None,
            video: None,
            article: None,
            poll: None,
            first_comment: None,
            edit: None,
        },
    };
    let (content, named) = content_of(&fm)?;
    let edit = fm.edit.unwrap_or(false);
    let first_comment = match fm.first_comment {
        Some(c) if visible(&c).trim().is_empty() => {
            return Err(DraftError::Content {
                key: "first_comment",
                why: "it is empty: write the comment, or remove the key".into(),
            })
        }
        c => c,
    };

    let id = fm.id.unwrap_or_else(|| stem.to_string());
    if !valid_id(&id) {
        return Err(DraftError::BadId { id });
    }
    let account_name = fm
        .account
        .or_else(|| config.default_account.clone())
        .ok_or(DraftError::NoAccount)?;
    let account = config
        .account(&account_name)
        .ok_or_else(|| DraftError::UnknownAccount {
            name: account_name.clone(),
            known: config
                .accounts
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let visibility = match fm.visibility {
        None => Visibility::Public,
        Some(v) => {
            let parsed = Visibility::parse(&v).ok_or_else(|| DraftError::BadVisibility {
                value: v.clone(),
                why: "use \"PUBLIC\" or \"CONNECTIONS\"".into(),
            })?;
            if parsed == Visibility::Connections
                && matches!(account.kind, AccountKind::Organization { .. })
            {
                return Err(DraftError::BadVisibility {
                    value: v,
                    why: format!(
                        "account {account_name:?} is an organization page; pages post PUBLIC only"
                    ),
                });
            }
            parsed
        }
    };
    // An edit goes out at once: the draft's old `publish_at` (by now in the past) or
    // `next-slot` is not read.
    let publish_at_v = if edit { None } else { fm.publish_at };
    let wants_slot = match &publish_at_v {
        Some(toml::Value::String(s)) => s.trim() == "next-slot",
        Some(_) => false,
        None => !edit && !account.slots.is_empty(),
    };
    if wants_slot && account.slots.is_empty() {
        return Err(DraftError::BadTime {
            value: "next-slot".into(),
            why: format!("account {account_name:?} has no slots; add slots = [\"0 0 9 * * Mon-Fri\"] to [accounts.{account_name}] or give a time"),
        });
    }
    let publish_at = match publish_at_v {
        Some(v) if !wants_slot => Some(parse_publish_at(&v, config, now)?),
        _ => None,
    };

    let body = body.trim_start_matches(['\n', '\r']).trim_end();
    if visible(body).trim().is_empty() {
        return Err(DraftError::Empty);
    }
    let commentary = ltf::escape(body);
    let chars = commentary_length(&commentary);
    if chars > COMMENTARY_LIMIT {
        return Err(DraftError::TooLong {
            chars,
            limit: COMMENTARY_LIMIT,
        });
    }
    let draft = Draft {
        id,
        account: account_name,
        publish_at,
        next_slot: wants_slot,
        visibility,
        text: body.to_string(),
        commentary,
        content,
        first_comment,
        edit,
        front_matter,
        source_stamp: None,
        renamed_in: false,
    };
    Ok((draft, named))
}

/// The content keys of the front matter: at most one kind; content that needs no file, or
/// the files to read.
fn content_of(fm: &FrontMatter) -> Result<(Option<Content>, Option<Named>), DraftError> {
    let set: Vec<&'static str> = [
        ("images", fm.images.is_some()),
        ("document", fm.document.is_some()),
        ("video", fm.video.is_some()),
        ("article", fm.article.is_some()),
        ("poll", fm.poll.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, on)| on.then_some(k))
    .collect();
    if let [first, second, ..] = set[..] {
        return Err(DraftError::MixedContent { first, second });
    }
    let bad = |key: &'static str, why: String| DraftError::Content { key, why };
    if let Some(images) = &fm.images {
        if images.is_empty() {
            return Err(bad(
                "images",
                "the list is empty: name 1 to 20 image files".into(),
            ));
        }
        if images.len() > MAX_IMAGES {
            return Err(bad(
                "images",
                format!(
                    "{} images; a post holds at most {MAX_IMAGES}: split them over two posts",
                    images.len()
                ),
            ));
        }
        let mut files = Vec::with_capacity(images.len());
        for ImageItem(f) in images {
            files.push(named_file("images", f.clone())?);
        }
        return Ok((None, Some(Named::Images(files))));
    }
    if let Some(d) = &fm.document {
        let title = match d.title.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => {
                return Err(bad(
                    "document",
                    "a title is required (LinkedIn shows it on the document): write document = { file = \"...\", title = \"...\" }".into(),
                ))
            }
        };
        let file = named_file("document", plain(&d.file))?;
        return Ok((None, Some(Named::Document { file, title })));
    }
    if let Some(v) = &fm.video {
        // LinkedIn's notes: a video post names the video "and a `title`".
        let Some(title) = v.title.clone().filter(|t| !visible(t).trim().is_empty()) else {
            return Err(bad(
                "video",
                "a title is required (LinkedIn wants one with a video): write video = { file = \"...\", title = \"...\" }".into(),
            ));
        };
        let file = named_file("video", plain(&v.file))?;
        return Ok((
            None,
            Some(Named::Video {
                file,
                title: Some(title),
            }),
        ));
    }
    if let Some(a) = &fm.article {
        let url = a.url.trim();
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
            _ => {
                return Err(bad(
                    "article",
                    format!("url = {url:?}: write a full http:// or https:// address"),
                ))
            }
        }
        let (url, title, description) = (url.to_string(), a.title.clone(), a.description.clone());
        return Ok(match &a.thumbnail {
            None => (
                Some(Content::Article {
                    url,
                    title,
                    description,
                    thumbnail: None,
                }),
                None,
            ),
            Some(t) => (
                None,
                Some(Named::Article {
                    url,
                    title,
                    description,
                    thumbnail: named_file("article", plain(t))?,
                }),
            ),
        });
    }
    if let Some(p) = &fm.poll {
        let question = p.question.trim().to_string();
        if question.is_empty() {
            return Err(bad("poll", "the question is empty".into()));
        }
        let len = question.encode_utf16().count();
        if len > MAX_POLL_QUESTION {
            return Err(bad(
                "poll",
                format!("the question is {len} characters; LinkedIn allows {MAX_POLL_QUESTION}"),
            ));
        }
        if !(2..=4).contains(&p.options.len()) {
            return Err(bad(
                "poll",
                format!("{} options; a poll has 2 to 4", p.options.len()),
            ));
        }
        let mut options = Vec::with_capacity(p.options.len());
        for o in &p.options {
            let o = o.trim();
            let len = o.encode_utf16().count();
            if len == 0 || len > MAX_POLL_OPTION {
                return Err(bad(
                    "poll",
                    format!("option {o:?} is {len} characters; write 1 to {MAX_POLL_OPTION}"),
                ));
            }
            options.push(o.to_string());
        }
        let duration = PollDuration::parse(&p.duration).ok_or_else(|| {
            bad(
                "poll",
                format!(
                    "duration = {:?}: use \"1d\", \"3d\", \"7d\" or \"14d\"",
                    p.duration
                ),
            )
        })?;
        return Ok((
            Some(Content::Poll {
                question,
                options,
                duration,
            }),
            None,
        ));
    }
    Ok((None, None))
}

fn plain(file: &str) -> NamedFile {
    NamedFile {
        file: file.to_string(),
        alt: None,
    }
}

/// A file named under `key`: a relative path inside the bundle (no `..`, not absolute), and
/// alt text within LinkedIn's limit.
fn named_file(key: &'static str, mut f: NamedFile) -> Result<NamedFile, DraftError> {
    let bad = |why: String| DraftError::Content { key, why };
    bundle_path(&f.file).map_err(|why| bad(format!("file = {:?}: {why}", f.file)))?;
    if let Some(alt) = &f.alt {
        let len = alt.encode_utf16().count();
        if len > MAX_ALT_TEXT {
            return Err(bad(format!(
                "the alt text of {:?} is {len} characters; LinkedIn allows {MAX_ALT_TEXT}: shorten it by {}",
                f.file,
                len - MAX_ALT_TEXT
            )));
        }
        if visible(alt).trim().is_empty() {
            f.alt = None;
        }
    }
    Ok(f)
}

/// The components of a path a bundle names: relative, inside the bundle. Links are refused
/// when the file is opened; this refuses what is wrong as written.
pub fn bundle_path(file: &str) -> Result<Vec<&str>, String> {
    if file.is_empty() {
        return Err("the file name is empty".into());
    }
    if file.starts_with('/') {
        return Err(
            "an absolute path; name a file inside the bundle folder, relative to it".into(),
        );
    }
    let parts: Vec<&str> = file
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err("`..` leaves the bundle folder; put the file inside the bundle and name it relative to it".into());
    }
    if parts.is_empty() {
        return Err("names the bundle folder itself, not a file".into());
    }
    Ok(parts)
}

/// LinkedIn's backend counts UTF-16 code units; counting the escaped text is the safe side
/// of whether the escapes count.
pub fn commentary_length(commentary: &str) -> usize {
    commentary.encode_utf16().count()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.')
}

/// Front matter with its first line number (if any), and the body.
type Split<'a> = (Option<(&'a str, usize)>, &'a str);

/// The keys front matter may hold; a body line that assigns one is misplaced front matter.
/// (Not the content keys: "Video:" or "Edit:" opening a line of text is common, and those
/// keys cannot make a post go out at another time or at all.)
const KEYS: [&str; 5] = ["id", "account", "publish_at", "visibility", "first_comment"];

/// Splits off `+++`-fenced front matter. Returns the front matter text with the line number
/// it starts on, and the rest. Blank lines may come before the opening fence and fences may
/// carry white space around them; a first line that only looks like a fence is an error,
/// never text, so intended front matter is never published as the post.
fn split_front_matter(text: &str) -> Result<Split<'_>, DraftError> {
    let mut offset = 0;
    let mut line_no = 0;
    let mut lines = text.split_inclusive('\n');
    let opening = loop {
        let Some(line) = lines.next() else {
            return Ok((None, text));
        };
        line_no += 1;
        if !visible(line).trim().is_empty() {
            break line;
        }
        offset += line.len();
    };
    match fence_kind(opening) {
        Fence::None => return Ok((None, text)),
        Fence::Toml => {}
        Fence::Yaml => return Err(yaml_error(&text[offset + opening.len()..])),
        Fence::NearMiss => {
            return Err(DraftError::FenceLike {
                line: line_no,
                found: visible(opening).trim().to_string(),
            })
        }
    }
    let opened_on = line_no;
    let fm_start = offset + opening.len();
    let mut pos = fm_start;
    for line in lines {
        if visible(line).trim() == "+++" {
            let fm = &text[fm_start..pos];
            let body = &text[pos + line.len()..];
            return Ok((Some((fm, opened_on + 1)), body));
        }
        pos += line.len();
    }
    Err(DraftError::UnclosedFrontMatter { line: opened_on })
}

enum Fence {
    None,
    Toml,
    Yaml,
    NearMiss,
}

/// What a draft's first non-blank line is: a `+++` fence, a YAML `---` fence, something an
/// author probably meant as a fence (`++ +`, `++++`, `+++toml`, `--`, anything holding `+++`
/// or `---`), or text.
fn fence_kind(line: &str) -> Fence {
    let line = visible(line);
    let t = line.trim();
    if t == "+++" {
        return Fence::Toml;
    }
    if t == "---" {
        return Fence::Yaml;
    }
    let squeezed: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    let only_marks = squeezed.len() >= 2 && squeezed.chars().all(|c| c == '+' || c == '-');
    if only_marks || t.contains("+++") || t.contains("---") {
        Fence::NearMiss
    } else {
        Fence::None
    }
}

/// The rejection for `---` front matter, showing its lipost keys written as TOML, ready to
/// paste: other keys (a static site's `title`, `layout`, ...) would be refused as unknown,
/// and nested YAML (lists, tables) does not go line by line, so those are named instead.
fn yaml_error(after_fence: &str) -> DraftError {
    let mut toml = String::from("+++\n");
    let mut dropped = Vec::new();
    for line in after_fence.lines() {
        if line.trim() == "---" {
            break;
        }
        // Indented: part of a nested value, named with its key.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        if key.is_empty() || key.starts_with('#') {
            continue;
        }
        match key {
            "edit" if value == "true" || value == "false" => {
                toml.push_str(&format!("edit = {value}\n"))
            }
            k if KEYS.contains(&k) && !value.is_empty() => {
                toml.push_str(&format!("{key} = {value:?}\n"))
            }
            _ => dropped.push(key.to_string()),
        }
    }
    toml.push_str("+++");
    DraftError::YamlFrontMatter { toml, dropped }
}

/// The YAML keys left out of the TOML form, in words.
fn left_out(dropped: &[String]) -> String {
    if dropped.is_empty() {
        return String::new();
    }
    format!(
        "Left out: {} (not a lipost key, or a list or table: write those in TOML by hand, see the README's front matter keys).\n",
        dropped.join(", ")
    )
}

/// The text's lines, split at every line break a reader sees: `\n`, `\r\n`, a lone `\r`
/// (old Mac files), and the Unicode line and paragraph separators. `str::lines` knows only
/// the first two, and a check that reads lines must not miss one that LinkedIn shows as a
/// line of its own.
fn text_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').flat_map(|l| {
        l.strip_suffix('\r')
            .unwrap_or(l)
            .split(['\r', '\u{2028}', '\u{2029}'])
    })
}

/// The first body line that assigns a front-matter key (`publish_at = ...`,
/// `publish_at: ...`; case and `-`/`_` do not matter): the key and the line's number.
fn misplaced_key(body: &str, first_line: usize) -> Option<(&'static str, usize)> {
    text_lines(body).enumerate().find_map(|(i, line)| {
        let line = visible(line);
        let t = line.trim_start();
        // A quoted key (`"publish_at" =`, `'publish_at':`) is a key all the same.
        let (word, rest) = match t.chars().next() {
            Some(q @ ('"' | '\'')) => t[1..].split_once(q)?,
            _ => {
                let end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))?;
                t.split_at(end)
            }
        };
        let rest = rest.trim_start();
        if !(rest.starts_with('=') || rest.starts_with(':')) {
            return None;
        }
        let word = word.to_ascii_lowercase().replace('-', "_");
        KEYS.iter()
            .find(|k| **k == word)
            .map(|k| (*k, first_line + i))
    })
}

/// `line` without the characters an editor shows as nothing: format characters (category Cf:
/// the BOM, zero-width spaces and joiners, direction marks, ...), the rest of Unicode's
/// default-ignorable code points (variation selectors, a leftover of a deleted emoji; the
/// combining grapheme joiner; Hangul fillers) and the blank braille pattern. None may turn a
/// fence or a key into text, nor count as text.
fn visible(line: &str) -> std::borrow::Cow<'_, str> {
    if line.chars().any(is_invisible) {
        line.chars()
            .filter(|&c| !is_invisible(c))
            .collect::<String>()
            .into()
    } else {
        line.into()
    }
}

/// Unicode general category Cf, Default_Ignorable_Code_Point (DerivedCoreProperties.txt,
/// Unicode 15.1) and U+2800 BRAILLE PATTERN BLANK.
fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        // Cf
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        // Default_Ignorable_Code_Point beyond Cf
        | 0x034F | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F | 0x2065 | 0x3164
        | 0xFE00..=0xFE0F | 0xFFA0 | 0xFFF0..=0xFFF8 | 0xE0000 | 0xE0002..=0xE001F
        | 0xE0080..=0xE0FFF
        // Blank, though not ignorable
        | 0x2800)
}

/// C0 and C1 control characters and DEL, except tab and line breaks: invisible in the post,
/// and a NUL or an escape sequence is never what an author meant to publish.
fn is_forbidden_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

fn parse_front_matter(fm: &str, first_line: usize) -> Result<FrontMatter, DraftError> {
    let parsed: FrontMatter = toml::from_str(fm).map_err(|e| {
        let line = e
            .span()
            .map(|s| crate::config::line_col(fm, s.start).0 + first_line - 1)
            .unwrap_or(first_line);
        DraftError::FrontMatter {
            line,
            message: e.message().trim().to_string(),
        }
    })?;
    // The raw bytes were checked for control characters already, but a TOML escape
    // (`"\u0000"`, `"\e"`) makes one only once parsed: every string value is checked too.
    if let Ok(table) = toml::from_str::<toml::Table>(fm) {
        for (key, value) in &table {
            control_in(key, value)?;
        }
    }
    Ok(parsed)
}

fn control_in(key: &str, value: &toml::Value) -> Result<(), DraftError> {
    match value {
        toml::Value::String(s) => match s.chars().find(|&c| is_forbidden_control(c)) {
            Some(c) => Err(DraftError::ControlInValue {
                key: key.to_string(),
                code: c as u32,
            }),
            None => Ok(()),
        },
        toml::Value::Array(items) => items.iter().try_for_each(|v| control_in(key, v)),
        toml::Value::Table(t) => t
            .iter()
            .try_for_each(|(k, v)| control_in(&format!("{key}.{k}"), v)),
        _ => Ok(()),
    }
}

/// RFC 3339 with an offset, or a local date-time read in the config's time zone; within
/// `retry.max_lateness` in the past and [`MAX_AHEAD_YEARS`] ahead of `now`.
fn parse_publish_at(
    v: &toml::Value,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, DraftError> {
    let tz = config.timezone;
    let value = match v {
        toml::Value::String(s) => s.trim().to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        other => other.to_string(),
    };
    let bad = |why: String| DraftError::BadTime {
        value: value.clone(),
        why,
    };
    let at = if let Ok(t) = DateTime::parse_from_rfc3339(&value) {
        t.with_timezone(&Utc)
    } else {
        const LOCAL: [&str; 4] = [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ];
        let naive = LOCAL
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(&value, f).ok())
            .ok_or_else(|| {
                bad(
                    "write a date and time, e.g. 2026-12-01T09:00:00+01:00 or 2026-12-01 09:00 (read in the config's timezone), or \"next-slot\""
                        .into(),
                )
            })?;
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            // Clocks going back: either instant may be meant, and guessing the earlier one
            // posts an hour early when the author meant the later.
            LocalResult::Ambiguous(first, second) => {
                return Err(bad(format!(
                    "this local time happens twice in {tz} (the clocks go back); add the offset you mean: {} or {}",
                    first.to_rfc3339(),
                    second.to_rfc3339()
                )))
            }
            LocalResult::None => {
                return Err(bad(format!(
                    "this local time does not exist in {tz} (the clocks skip it); give an offset or another time"
                )))
            }
        }
    };
    // A leap second (`:60`) is kept by chrono as second 59 plus a second of nanoseconds,
    // which every later step reads as second 59: a second early. UTC announces leap seconds
    // months ahead and none is planned; one written by hand is a typo.
    if at.timestamp_subsec_nanos() >= 1_000_000_000 {
        return Err(bad(
            "a leap second (:60) is no time lipost can schedule; write :59 or the next minute"
                .into(),
        ));
    }
    let latest = now.checked_add_months(Months::new(12 * MAX_AHEAD_YEARS));
    if latest.is_none_or(|latest| at > latest) {
        return Err(bad(format!(
            "more than {MAX_AHEAD_YEARS} years ahead; check the year"
        )));
    }
    let lateness = config.retry.max_lateness;
    let past = (now - at).to_std().unwrap_or_default();
    if past > lateness {
        return Err(bad(format!(
            "this is {} in the past, more than retry.max_lateness ({}) allows; check the date, or remove publish_at to post now",
            crate::config::fmt_dur(Duration::from_secs(past.as_secs())),
            crate::config::fmt_dur(lateness)
        )));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> Config {
        Config::parse(crate::config::TEST_CONFIG, Path::new("/x/config.toml")).unwrap()
    }

    /// The clock of the unit tests: before every time they write.
    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn p(s: &str) -> Result<Draft, DraftError> {
        parse_at(s.as_bytes(), "launch", &config(), now())
    }

    #[test]
    fn an_edit_ignores_the_original_publish_at_long_past() {
        let text = "+++\npublish_at = \"2020-01-01T09:00:00Z\"\nedit = true\n+++\nFixed\n";
        let d = p(text).unwrap();
        assert!(d.edit);
        assert_eq!(d.publish_at, None);
        // Without `edit`, the same time is refused as too far back.
        assert!(matches!(
            p(&text.replace("edit = true\n", "")),
            Err(DraftError::BadTime { .. })
        ));
    }

    fn bad_time(s: &str) -> String {
        match p(s) {
            Err(e @ DraftError::BadTime { .. }) => e.to_string(),
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn a_leap_second_is_refused() {
        for t in [
            "2026-12-31T23:59:60Z",
            "2026-12-02T23:59:60.5Z",
            "2026-12-02 23:59:60",
        ] {
            let e = bad_time(&format!("+++\npublish_at = \"{t}\"\n+++\nx"));
            assert!(e.contains("leap second"), "{t}: {e}");
        }
    }

    #[test]
    fn ambiguous_local_times_are_refused() {
        // Europe/Berlin: 02:30 on 2026-10-25 happens at +02:00 and again at +01:00.
        let e = bad_time("+++\npublish_at = \"2026-10-25 02:30\"\n+++\nx");
        assert!(e.contains("happens twice"), "{e}");
        assert!(e.contains("+02:00") && e.contains("+01:00"), "{e}");
        let d = p("+++\npublish_at = 2026-10-25T02:30:00+01:00\n+++\nx").unwrap();
        assert_eq!(
            d.publish_at.unwrap().to_rfc3339(),
            "2026-10-25T01:30:00+00:00"
        );
    }

    #[test]
    fn publish_at_must_be_within_ten_years_and_max_lateness() {
        for far in [
            "9999-12-31 23:00",
            "2036-01-01T00:00:01Z",
            "2046-05-01T09:00:00Z",
        ] {
            let e = bad_time(&format!("+++\npublish_at = \"{far}\"\n+++\nx"));
            assert!(e.contains("10 years ahead"), "{e}");
        }
        assert!(p("+++\npublish_at = \"2035-12-31T23:59:59Z\"\n+++\nx").is_ok());
        // The default max_lateness is 24 h: a day-old time is still "now", a typo'd year is not.
        let d = p("+++\npublish_at = \"2025-12-31T01:00:00Z\"\n+++\nx").unwrap();
        assert!(d.publish_at.unwrap() < now());
        let e = bad_time("+++\npublish_at = \"2025-11-01T09:00:00Z\"\n+++\nx");
        assert!(
            e.contains("in the past") && e.contains("remove publish_at"),
            "{e}"
        );
    }

    #[test]
    fn control_characters_written_as_escapes_are_refused_with_their_key() {
        let (config, now) = (config(), now());
        for (fm, key) in [
            ("first_comment = \"see\\u0000\"", "first_comment"),
            (
                "poll = { question = \"Q\\u001b[2J?\", options = [\"a\", \"b\"], duration = \"1d\" }",
                "poll.question",
            ),
            ("images = [{ file = \"a.png\", alt = \"x\\u007f\" }]", "images.alt"),
        ] {
            let text = format!("+++\n{fm}\n+++\nHello\n");
            let e = parse_bundle_at(text.as_bytes(), "d", &config, now).unwrap_err();
            assert!(
                matches!(&e, DraftError::ControlInValue { key: k, .. } if k == key),
                "{fm}: {e}"
            );
        }
    }

    #[test]
    fn control_characters_are_refused_with_their_place() {
        assert_eq!(
            p("Hello\0\0\0\0").unwrap_err(),
            DraftError::ControlChar {
                code: 0,
                offset: 5,
                line: 1
            }
        );
        for (text, code, line) in [
            ("a\nb\u{1b}[2Jc", 0x1b, 2),
            ("+++\nid = \"a\u{7}\"\n+++\nx", 7, 2),
            ("x\u{7f}", 0x7f, 1),
            ("x\u{85}", 0x85, 1),
        ] {
            match p(text) {
                Err(DraftError::ControlChar {
                    code: c, line: l, ..
                }) => {
                    assert_eq!((c, l), (code, line), "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(p("tab\there\r\nand lines\n").is_ok());
    }

    #[test]
    fn invisible_characters_do_not_hide_a_fence_or_a_key() {
        let fm = "\"publish_at\" = 2030-01-01T09:00:00Z";
        for text in [
            format!("\n\u{feff}+++\n{fm}\n+++\nEmbargoed"),
            format!("\u{200b}+++\n{fm}\n\u{2060}+++\u{200b}\nEmbargoed"),
            format!("\u{200b}\n+++\u{200d}\n{fm}\n+++\nEmbargoed"),
            // Default-ignorable, not Cf: a variation selector left by a deleted emoji, the
            // combining grapheme joiner, a Hangul filler; and the blank braille pattern.
            format!("\u{fe0f}\n+++\n{fm}\n+++\nEmbargoed"),
            format!("\u{34f}\u{3164}\n\u{2800}+++\n{fm}\n+++\u{e0100}\nEmbargoed"),
        ] {
            let d = p(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(
                d.publish_at.unwrap().to_rfc3339(),
                "2030-01-01T09:00:00+00:00",
                "{text:?}"
            );
            assert_eq!(d.text, "Embargoed");
        }
        for text in [
            "Launch\n\u{200b}publish_at = 2030-01-01\n",
            "Launch\n\u{fe0f}publish_at = 2030-01-01\n",
            "Launch\n\u{34f}\u{2800}publish_at = 2030-01-01\n",
            "Launch\n\"publish_at\" = 2030-01-01\n",
            "Launch\n'publish_at': 2030-01-01\n",
            "Launch\n\u{feff}\"publish-at\" = 2030-01-01\n",
            // Every line break a reader sees: a lone CR (old Mac files), CRLF, and the
            // Unicode line and paragraph separators.
            "Launch\rpublish_at = \"2030-01-01T10:00:00Z\"\rEmbargoed\r",
            "Launch\r\npublish_at = 2030-01-01\r\n",
            "Launch\u{2028}publish_at = 2030-01-01",
            "Launch\u{2029}publish_at: 2030-01-01",
        ] {
            assert!(
                matches!(
                    p(text),
                    Err(DraftError::MisplacedKey {
                        key: "publish_at",
                        line: 2
                    })
                ),
                "{text:?}: {:?}",
                p(text)
            );
        }
        for text in ["\u{200b}++ +\nx", "Big +++ news\nx", "Wait --- what\nx"] {
            assert!(
                matches!(p(text), Err(DraftError::FenceLike { line: 1, .. })),
                "{text:?}: {:?}",
                p(text)
            );
        }
        assert!(matches!(
            p("\u{feff}-\u{200b}--\nx"),
            Err(DraftError::YamlFrontMatter { .. })
        ));
        assert!(p("\"quoted\" = fine\nx").is_ok());
    }

    fn b(s: &str) -> Result<(Draft, Option<Named>), DraftError> {
        parse_bundle_at(s.as_bytes(), "launch", &config(), now())
    }

    fn content_error(s: &str) -> String {
        match b(s) {
            Err(e @ (DraftError::Content { .. } | DraftError::MixedContent { .. })) => {
                e.to_string()
            }
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn bundle_keys_name_files_in_order_with_their_alt_text() {
        let (d, named) = b("+++\nimages = [\"a.png\", { file = \"./pics/b.jpg\", alt = \"B\" }]\nfirst_comment = \"More below\"\nedit = true\n+++\nx").unwrap();
        assert_eq!(d.first_comment.as_deref(), Some("More below"));
        assert!(d.edit);
        assert_eq!(d.content, None);
        let named = named.unwrap();
        let files: Vec<(&str, Option<&str>)> = named
            .files()
            .into_iter()
            .map(|(f, k)| {
                assert_eq!(k, MediaKind::Image);
                (f.file.as_str(), f.alt.as_deref())
            })
            .collect();
        assert_eq!(files, [("a.png", None), ("./pics/b.jpg", Some("B"))]);
        assert_eq!(bundle_path("./pics/b.jpg").unwrap(), ["pics", "b.jpg"]);
        let (_, named) =
            b("+++\ndocument = { file = \"d.pdf\", title = \"Deck\" }\n+++\nx").unwrap();
        assert!(matches!(named, Some(Named::Document { title, .. }) if title == "Deck"));
        let (_, named) = b("+++\nvideo = { file = \"v.mp4\", title = \"V\" }\n+++\nx").unwrap();
        assert!(matches!(named, Some(Named::Video { title: Some(t), .. }) if t == "V"));
        let e = b("+++\nvideo = { file = \"v.mp4\" }\n+++\nx").unwrap_err();
        assert!(e.to_string().contains("a title is required"), "{e}");
    }

    #[test]
    fn keys_without_files_work_in_a_single_file_and_file_keys_need_a_bundle() {
        let d = p("+++\npoll = { question = \"Q?\", options = [\"a\", \"b\", \"c\"], duration = \"14d\" }\n+++\nx").unwrap();
        assert_eq!(
            d.content,
            Some(Content::Poll {
                question: "Q?".into(),
                options: vec!["a".into(), "b".into(), "c".into()],
                duration: PollDuration::FourteenDays,
            })
        );
        let d =
            p("+++\narticle = { url = \"https://example.com/a\", title = \"T\" }\n+++\nx").unwrap();
        assert!(matches!(
            d.content,
            Some(Content::Article {
                thumbnail: None,
                ..
            })
        ));
        for (text, key) in [
            ("images = [\"a.png\"]", "images"),
            ("document = { file = \"a.pdf\", title = \"T\" }", "document"),
            ("video = { file = \"a.mp4\", title = \"T\" }", "video"),
            (
                "article = { url = \"https://e.com\", thumbnail = \"c.png\" }",
                "article",
            ),
        ] {
            let e = p(&format!("+++\n{text}\n+++\nx")).unwrap_err();
            assert_eq!(e, DraftError::NeedsBundle { key }, "{text}");
            assert!(e
                .to_string()
                .contains("put the draft and its files in a folder (a bundle)"));
        }
    }

    #[test]
    fn content_keys_are_checked_against_linkedins_limits() {
        let many = (0..21)
            .map(|i| format!("\"{i}.png\""))
            .collect::<Vec<_>>()
            .join(",");
        for (fm, want) in [
            (format!("images = [{many}]"), "21 images"),
            ("images = []".into(), "the list is empty"),
            ("images = [\"/etc/a.png\"]".into(), "an absolute path"),
            (
                "images = [\"x/../../a.png\"]".into(),
                "`..` leaves the bundle folder",
            ),
            (
                format!(
                    "images = [{{ file = \"a.png\", alt = \"{}\" }}]",
                    "é".repeat(4087)
                ),
                "4087 characters",
            ),
            (
                "document = { file = \"a.pdf\", title = \" \" }".into(),
                "a title is required",
            ),
            (
                "article = { url = \"ftp://e.com/x\" }".into(),
                "http:// or https://",
            ),
            (
                "poll = { question = \"Q\", options = [\"a\"], duration = \"1d\" }".into(),
                "1 options; a poll has 2 to 4",
            ),
            (
                "poll = { question = \"Q\", options = [\"a\", \"b\"], duration = \"2d\" }".into(),
                "\"1d\", \"3d\", \"7d\" or \"14d\"",
            ),
            (
                format!(
                    "poll = {{ question = \"{}\", options = [\"a\", \"b\"], duration = \"1d\" }}",
                    "q".repeat(141)
                ),
                "141 characters",
            ),
            (
                format!(
                    "poll = {{ question = \"Q\", options = [\"a\", \"{}\"], duration = \"1d\" }}",
                    "o".repeat(31)
                ),
                "write 1 to 30",
            ),
            (
                "video = { file = \"v.mp4\" }\narticle = { url = \"https://e.com\" }".into(),
                "both `video` and `article`",
            ),
            ("first_comment = \"  \"".into(), "it is empty"),
        ] {
            let e = content_error(&format!("+++\n{fm}\n+++\nx"));
            assert!(e.contains(want), "{fm}: {e}");
        }
        assert!(b(&format!(
            "+++\nimages = [{}]\n+++\nx",
            many.split(',').take(20).collect::<Vec<_>>().join(",")
        ))
        .is_ok());
        let e = b("+++\nimages = [{ file = \"a.png\", colour = \"red\" }]\n+++\nx").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn plain_text_gets_defaults() {
        let d = p("Hello world\n").unwrap();
        assert_eq!(d.id, "launch");
        assert_eq!(d.account, "me");
        assert_eq!(d.publish_at, None);
        assert_eq!(d.visibility, Visibility::Public);
        assert_eq!(d.text, "Hello world");
    }

    #[test]
    fn front_matter_is_read() {
        let d = p("+++\nid = \"x1\"\naccount = \"acme\"\npublish_at = 2026-12-01T09:00:00+01:00\n+++\n\nBody (with parens)\n").unwrap();
        assert_eq!(d.id, "x1");
        assert_eq!(d.account, "acme");
        assert_eq!(
            d.publish_at.unwrap().to_rfc3339(),
            "2026-12-01T08:00:00+00:00"
        );
        assert_eq!(d.text, "Body (with parens)");
        assert_eq!(d.commentary, "Body \\(with parens\\)");
    }

    #[test]
    fn local_times_use_the_config_timezone() {
        let d = p("+++\npublish_at = \"2026-07-01 09:00\"\n+++\nx").unwrap();
        assert_eq!(
            d.publish_at.unwrap().to_rfc3339(),
            "2026-07-01T07:00:00+00:00"
        );
        let d = p("+++\npublish_at = 2026-01-05T09:00:00\n+++\nx").unwrap();
        assert_eq!(
            d.publish_at.unwrap().to_rfc3339(),
            "2026-01-05T08:00:00+00:00"
        );
        let e = p("+++\npublish_at = \"2026-03-29 02:30\"\n+++\nx").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_line() {
        let e = p("+++\nid = \"a\"\ncolour = \"red\"\n+++\nx").unwrap_err();
        assert_eq!(
            e,
            DraftError::FrontMatter {
                line: 3,
                message: e_message(&e)
            }
        );
        assert!(e.to_string().contains("colour"), "{e}");
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    fn e_message(e: &DraftError) -> String {
        match e {
            DraftError::FrontMatter { message, .. } => message.clone(),
            _ => String::new(),
        }
    }

    #[test]
    fn front_matter_is_told_from_a_bare_text() {
        assert!(front_matter_attempted(b"+++\nid = \"a\"\n+++\ntext"));
        assert!(front_matter_attempted(b"\n+++\n+++\n"));
        assert!(front_matter_attempted(b"\xef\xbb\xbf\n+++ \nid = \"a\"\n"));
        assert!(front_matter_attempted(b"+++\n"));
        assert!(!front_matter_attempted(b"---\nid: a\n---\ntext"));
        assert!(!front_matter_attempted(b"\n--- \nmore text\n"));
        assert!(!front_matter_attempted(b"just text\n"));
        assert!(!front_matter_attempted(b"\n\n"));
    }

    #[test]
    fn rejections_say_what() {
        assert_eq!(
            p("+++\nid = \"a\"\n+++\n\n  \n").unwrap_err(),
            DraftError::Empty
        );
        assert_eq!(p("").unwrap_err(), DraftError::Empty);
        // Nothing a reader would see is no text either.
        for blank in ["\u{200b}\n", "\u{3164}", "\u{fe0f} \u{2800}\n\u{feff}"] {
            assert_eq!(p(blank).unwrap_err(), DraftError::Empty, "{blank:?}");
        }
        assert!(matches!(
            p("+++\nfirst_comment = \"\u{200b}\"\n+++\nx").unwrap_err(),
            DraftError::Content {
                key: "first_comment",
                ..
            }
        ));
        assert_eq!(
            p("+++\nid = \"a\"\nno end").unwrap_err(),
            DraftError::UnclosedFrontMatter { line: 1 }
        );
        assert!(matches!(
            p("+++\naccount = \"bob\"\n+++\nx").unwrap_err(),
            DraftError::UnknownAccount { .. }
        ));
        assert!(matches!(
            p("+++\nid = \"a b\"\n+++\nx").unwrap_err(),
            DraftError::BadId { .. }
        ));
        assert!(matches!(
            p("+++\naccount = \"acme\"\nvisibility = \"CONNECTIONS\"\n+++\nx").unwrap_err(),
            DraftError::BadVisibility { .. }
        ));
        let e = parse(b"ok\n\xff\xfe", "a", &config()).unwrap_err();
        assert_eq!(e, DraftError::NotUtf8 { offset: 3, line: 2 });
    }

    #[test]
    fn length_counts_the_escaped_commentary() {
        let ok = "a".repeat(COMMENTARY_LIMIT);
        assert!(p(&ok).is_ok());
        let e = p(&format!("{}(", "a".repeat(COMMENTARY_LIMIT - 1))).unwrap_err();
        assert_eq!(
            e,
            DraftError::TooLong {
                chars: COMMENTARY_LIMIT + 1,
                limit: COMMENTARY_LIMIT
            }
        );
    }

    #[test]
    fn body_keeps_inner_whitespace_and_drops_the_trailing_newline() {
        let d = p("+++\n+++\n\nline one\n\n  indented\n").unwrap();
        assert_eq!(d.text, "line one\n\n  indented");
    }

    #[test]
    fn fences_tolerate_white_space_blank_lines_and_a_bom() {
        let want = "2030-01-01T09:00:00+00:00";
        for text in [
            "+++ \npublish_at = \"2030-01-01T09:00:00Z\"\n+++\t\nx\n",
            "\n\n+++\npublish_at = \"2030-01-01T09:00:00Z\"\n  +++\nx\n",
            "\u{feff}\n+++\r\npublish_at = \"2030-01-01T09:00:00Z\"\r\n+++\r\nx\r\n",
            "  \n\t+++\t\npublish_at = \"2030-01-01T09:00:00Z\"\n+++\nx",
        ] {
            let d = p(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(d.publish_at.unwrap().to_rfc3339(), want, "{text:?}");
            assert_eq!(d.text, "x", "{text:?}");
        }
    }

    #[test]
    fn front_matter_errors_keep_their_line_after_leading_blank_lines() {
        let e = p("\n\n+++\nid = \"a\"\ncolour = 1\n+++\nx").unwrap_err();
        assert!(e.to_string().contains("line 5"), "{e}");
        assert_eq!(
            p("\n+++\nid = \"a\"\n").unwrap_err(),
            DraftError::UnclosedFrontMatter { line: 2 }
        );
    }

    #[test]
    fn yaml_front_matter_is_refused_with_its_toml_form() {
        let e = p("---\npublish_at: 2030-01-01 09:00\nid: 'launch'\n---\nx\n").unwrap_err();
        assert_eq!(
            e,
            DraftError::YamlFrontMatter {
                toml: "+++\npublish_at = \"2030-01-01 09:00\"\nid = \"launch\"\n+++".into(),
                dropped: vec![],
            }
        );
        assert!(e.to_string().contains("+++\npublish_at = "), "{e}");
        // What a static site's draft carries besides: left out, and said so.
        let e = p(
            "---\ntitle: Launch\nlayout: post\nedit: true\ntags:\n  - rust\nid: launch\n---\nx\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            DraftError::YamlFrontMatter {
                toml: "+++\nedit = true\nid = \"launch\"\n+++".into(),
                dropped: vec!["title".into(), "layout".into(), "tags".into()],
            }
        );
        assert!(
            e.to_string().contains("Left out: title, layout, tags"),
            "{e}"
        );
    }

    #[test]
    fn near_miss_fences_are_refused() {
        for text in [
            "++ +\nid = \"a\"\n+++\nx",
            "++++\nx",
            "+++toml\nx\n+++\ny",
            "--\nx",
            "- - -\nx",
        ] {
            assert!(
                matches!(p(text).unwrap_err(), DraftError::FenceLike { line: 1, .. }),
                "{text:?}"
            );
        }
        for text in ["+1 for this\n", "-- a quote\n", "Hello\n+++\n"] {
            assert!(p(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn a_front_matter_key_in_the_text_is_refused() {
        for (text, key, line) in [
            ("publish_at = 2030-01-01\nx", "publish_at", 1),
            ("x\n\nPublish-At: tomorrow\n", "publish_at", 3),
            (
                "+++\nid = \"a\"\n+++\nhello\n  visibility = \"PUBLIC\"\n",
                "visibility",
                5,
            ),
            ("Launch day!\naccount: me\n", "account", 2),
            (
                "Launch\nfirst_comment = \"see below\"\n",
                "first_comment",
                2,
            ),
        ] {
            match p(text) {
                Err(DraftError::MisplacedKey { key: k, line: l }) => {
                    assert_eq!((k, l), (key, line), "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(p("identity matters: a post\naccounting = fun\n").is_ok());
    }
}
