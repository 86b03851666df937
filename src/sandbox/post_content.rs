//! The `content` of `POST /rest/posts`, checked as LinkedIn does: one kind, the documented
//! shapes and limits, every asset it names owned by the author and uploaded. Like LinkedIn,
//! an asset still `PROCESSING` is accepted; its status at that moment is recorded with the
//! post, and a post whose asset later fails is kept but shown to no one (`visible: false`).

// The checks' errors are finished HTTP answers; boxing them would buy nothing here.
#![allow(clippy::result_large_err)]

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::api::error;
use super::media::{Kind, Status};
use super::{Inner, StoredPost};
use crate::linkedin::wire::PostContent;

/// LinkedIn's limit on an image's `altText`.
const MAX_ALT_TEXT: usize = 4086;
/// Poll limits (unconfirmed in LinkedIn's docs; the sandbox applies the documented ones).
const MAX_POLL_QUESTION: usize = 140;
const MAX_POLL_OPTION: usize = 30;
const POLL_DURATIONS: &[&str] = &["ONE_DAY", "THREE_DAYS", "SEVEN_DAYS", "FOURTEEN_DAYS"];

/// An asset a post names, as it was when the post was created.
#[derive(Debug, Clone, Serialize)]
pub struct PostAsset {
    pub urn: String,
    pub kind: Kind,
    pub sha256: Option<String>,
    pub bytes: u64,
    /// When the post named it: tests check it was `AVAILABLE`.
    pub status_at_post: Status,
    /// Now (worked out when listed).
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_failure_reason: Option<String>,
}

/// How `/_sandbox/posts` names the content kind.
pub fn kind(c: &PostContent) -> &'static str {
    match c {
        PostContent::Media(m) => Kind::of_urn(&m.id).map_or("media", Kind::as_str),
        PostContent::MultiImage(_) => "multi_image",
        PostContent::Article(_) => "article",
        PostContent::Poll(_) => "poll",
    }
}

/// Brings the assets' current status into a listed post.
pub fn refresh(inner: &Inner, post: &mut StoredPost, now: DateTime<Utc>) {
    for a in &mut post.assets {
        if let Some(m) = inner.media.get(&a.urn) {
            let processing = inner.settings.media_processing;
            a.status = m.status(now, processing);
            a.processing_failure_reason = m.failure_reason(now, processing);
        }
    }
    post.visible = post
        .assets
        .iter()
        .all(|a| a.status != Status::ProcessingFailed);
}

/// The fields `POST /rest/posts` knows, from the API notes, as `(path, fields)`; `[]` in a
/// path stands for any element of an array. Rest.li refuses a field its schema lacks (422),
/// where a lenient reading would quietly drop it: a client that misspells one must fail here.
const KNOWN_FIELDS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "author",
            "commentary",
            "visibility",
            "distribution",
            "lifecycleState",
            "isReshareDisabledByAuthor",
            "content",
            "contentLandingPage",
            "contentCallToActionLabel",
        ],
    ),
    (
        "/distribution",
        &[
            "feedDistribution",
            "targetEntities",
            "thirdPartyDistributionChannels",
        ],
    ),
    ("/content", &["media", "multiImage", "article", "poll"]),
    ("/content/media", &["id", "altText", "title"]),
    ("/content/multiImage", &["images"]),
    ("/content/multiImage/images/[]", &["id", "altText"]),
    (
        "/content/article",
        &["source", "title", "description", "thumbnail"],
    ),
    ("/content/poll", &["question", "options", "settings"]),
    ("/content/poll/options/[]", &["text"]),
    ("/content/poll/settings", &["duration"]),
];

/// The first field of a post body its schema does not know, as a 422.
pub fn unknown_field(body: &serde_json::Map<String, Value>) -> Option<Response> {
    fn walk(path: &str, v: &Value) -> Option<String> {
        match v {
            Value::Object(map) => {
                let known = KNOWN_FIELDS.iter().find(|(p, _)| *p == path)?.1;
                map.iter()
                    .find_map(|(k, v)| match known.contains(&k.as_str()) {
                        false => Some(format!("{path}/{k}")),
                        true => walk(&format!("{path}/{k}"), v),
                    })
            }
            Value::Array(items) => items.iter().find_map(|i| walk(&format!("{path}/[]"), i)),
            _ => None,
        }
    }
    let field = walk("", &Value::Object(body.clone()))?;
    Some(unprocessable(&format!(
        "ERROR :: {field} :: unrecognized field found but not allowed"
    )))
}

fn unprocessable(message: &str) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, None, None, message)
}

fn too_long(field: &str, len: usize, max: usize) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        None,
        Some("FIELD_LENGTH_TOO_LONG"),
        &format!("ERROR :: {field} :: length {len} exceeds the maximum allowed ({max})"),
    )
}

fn required(field: &str) -> Response {
    unprocessable(&format!(
        "ERROR :: {field} :: field is required but not found and has no default value"
    ))
}

/// Checks `content` (as received) of a post by `author`; answers the typed content and every
/// asset it names, in order.
pub fn check(
    inner: &Inner,
    author: &str,
    content: &Value,
    now: DateTime<Utc>,
) -> Result<(PostContent, Vec<PostAsset>), Response> {
    let Some(map) = content.as_object() else {
        return Err(unprocessable("ERROR :: /content :: must be an object"));
    };
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    if keys.len() != 1 {
        return Err(unprocessable(&format!(
            "ERROR :: /content :: exactly one content kind is allowed, got {keys:?}"
        )));
    }
    if !["media", "multiImage", "article", "poll"].contains(&keys[0]) {
        return Err(unprocessable(&format!(
            "ERROR :: /content/{} :: this content kind is not supported for organic posts",
            keys[0]
        )));
    }
    let parsed: PostContent = serde_json::from_value(content.clone())
        .map_err(|e| unprocessable(&format!("ERROR :: /content :: {e}")))?;
    let asset = |urn: &str, want: Kind| check_asset(inner, urn, want, author, now);
    let alt = |field: &str, alt: &Option<String>| match alt {
        Some(a) if a.chars().count() > MAX_ALT_TEXT => {
            Err(too_long(field, a.chars().count(), MAX_ALT_TEXT))
        }
        _ => Ok(()),
    };
    let assets = match &parsed {
        PostContent::Media(m) => {
            let Some(kind) = Kind::of_urn(&m.id) else {
                return Err(unprocessable(&format!(
                    "ERROR :: /content/media/id :: {:?} is not an image, document or video URN",
                    m.id
                )));
            };
            match kind {
                Kind::Image => alt("/content/media/altText", &m.alt_text)?,
                // The notes: a document's `title` is required, and a video post names
                // the video "and a `title`".
                Kind::Document | Kind::Video if m.title.as_deref().is_none_or(str::is_empty) => {
                    return Err(required("/content/media/title"))
                }
                _ => {}
            }
            vec![asset(&m.id, kind)?]
        }
        PostContent::MultiImage(mi) => {
            let n = mi.images.len();
            if !(2..=20).contains(&n) {
                return Err(unprocessable(&format!(
                    "ERROR :: /content/multiImage/images :: must hold 2 to 20 images, got {n}"
                )));
            }
            let mut out = Vec::with_capacity(n);
            for (i, img) in mi.images.iter().enumerate() {
                alt(
                    &format!("/content/multiImage/images/{i}/altText"),
                    &img.alt_text,
                )?;
                out.push(asset(&img.id, Kind::Image)?);
            }
            out
        }
        PostContent::Article(a) => {
            let scheme_ok =
                url::Url::parse(&a.source).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if a.source.is_empty() {
                return Err(required("/content/article/source"));
            }
            if !scheme_ok {
                return Err(unprocessable(&format!(
                    "ERROR :: /content/article/source :: {:?} is not an http(s) URL",
                    a.source
                )));
            }
            match &a.thumbnail {
                Some(t) => vec![asset(t, Kind::Image)?],
                None => Vec::new(),
            }
        }
        PostContent::Poll(p) => {
            let q = p.question.chars().count();
            if q == 0 {
                return Err(required("/content/poll/question"));
            }
            if q > MAX_POLL_QUESTION {
                return Err(too_long("/content/poll/question", q, MAX_POLL_QUESTION));
            }
            if !(2..=4).contains(&p.options.len()) {
                return Err(unprocessable(&format!(
                    "ERROR :: /content/poll/options :: must hold 2 to 4 options, got {}",
                    p.options.len()
                )));
            }
            for (i, o) in p.options.iter().enumerate() {
                let n = o.text.chars().count();
                if n == 0 {
                    return Err(required(&format!("/content/poll/options/{i}/text")));
                }
                if n > MAX_POLL_OPTION {
                    return Err(too_long(
                        &format!("/content/poll/options/{i}/text"),
                        n,
                        MAX_POLL_OPTION,
                    ));
                }
            }
            if !POLL_DURATIONS.contains(&p.settings.duration.as_str()) {
                return Err(unprocessable(&format!(
                    "ERROR :: /content/poll/settings/duration :: invalid enum value {:?} (one of {POLL_DURATIONS:?})",
                    p.settings.duration
                )));
            }
            Vec::new()
        }
    };
    Ok((parsed, assets))
}

/// An asset a post may name: of the right kind, owned by the author, uploaded.
fn check_asset(
    inner: &Inner,
    urn: &str,
    want: Kind,
    author: &str,
    now: DateTime<Utc>,
) -> Result<PostAsset, Response> {
    let invalid = |why: String| error(StatusCode::BAD_REQUEST, None, Some(want.invalid_id()), &why);
    if Kind::of_urn(urn) != Some(want) {
        return Err(invalid(format!(
            "{urn:?} is not a valid {} URN",
            want.as_str()
        )));
    }
    let Some(a) = inner.media.get(urn) else {
        return Err(invalid(format!("{urn} does not exist")));
    };
    if a.owner != author {
        return Err(invalid(format!(
            "{urn} is owned by {}, not by the post's author {author}",
            a.owner
        )));
    }
    let status = a.status(now, inner.settings.media_processing);
    match status {
        Status::WaitingUpload => Err(error(
            StatusCode::BAD_REQUEST,
            None,
            Some("MEDIA_ASSET_WAITING_UPLOAD"),
            "Media asset is waiting upload",
        )),
        Status::ProcessingFailed => Err(error(
            StatusCode::BAD_REQUEST,
            None,
            Some("MEDIA_ASSET_PROCESSING_FAILED"),
            "Media asset processing failed",
        )),
        Status::Processing | Status::Available => Ok(PostAsset {
            urn: urn.to_string(),
            kind: want,
            sha256: a.sha256.clone(),
            bytes: a.bytes,
            status_at_post: status,
            status,
            processing_failure_reason: None,
        }),
    }
}
