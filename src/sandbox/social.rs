//! What happens to a post after it is created: comments
//! (`POST /rest/socialActions/{urn}/comments`), edits (`POST /rest/posts/{urn}` with
//! `X-RestLi-Method: PARTIAL_UPDATE`) and `DELETE /rest/posts/{urn}`, each only by the post's
//! author (or a page role holder for a page's post), each recorded on the post.

// The checks' errors are finished HTTP answers; boxing them would buy nothing here.
#![allow(clippy::result_large_err)]

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::api::{access_denied, acts_for, authenticate, check_versioned, error, json_object};
use super::{ltf, Sandbox, TokenInfo};
use crate::linkedin::wire::{PostContent, POSTING_ROLES};

/// Fields a `PARTIAL_UPDATE` may set; everything else (media above all) is fixed.
const EDITABLE: &[&str] = &[
    "commentary",
    "contentCallToActionLabel",
    "contentLandingPage",
    "lifecycleState",
];

#[derive(Debug, Clone, Serialize)]
pub struct Comment {
    pub urn: String,
    pub actor: String,
    /// As received: comments are not Little Text.
    pub text: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Edit {
    pub at: DateTime<Utc>,
    /// The `$set` as received.
    pub set: Map<String, Value>,
    /// The post's commentary after this edit, as received and as a reader sees it.
    pub commentary: String,
    pub text: String,
}

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/rest/posts/{urn}", post(edit_post).delete(delete_post))
        .route("/rest/socialActions/{urn}/comments", post(comment))
}

fn illegal(message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        None,
        Some("ILLEGAL_ARGUMENT"),
        message,
    )
}

fn not_found(urn: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        None,
        None,
        &format!("Post {urn} does not exist"),
    )
}

fn caller(sb: &Sandbox, headers: &HeaderMap) -> Result<TokenInfo, Response> {
    check_versioned(headers)?;
    authenticate(sb, headers)
}

async fn edit_post(
    State(sb): State<Sandbox>,
    Path(urn): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let who = match caller(&sb, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let method = headers.get("x-restli-method").and_then(|v| v.to_str().ok());
    if !method.is_some_and(|m| m.eq_ignore_ascii_case("PARTIAL_UPDATE")) {
        return illegal("POST to a post's URN needs X-RestLi-Method: PARTIAL_UPDATE");
    }
    let body = match json_object(&headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(patch) = body.get("patch").and_then(Value::as_object) else {
        return illegal("ERROR :: /patch :: field is required but not found");
    };
    if let Some(other) = patch.keys().find(|k| *k != "$set") {
        return illegal(&format!(
            "ERROR :: /patch/{other} :: only $set is supported"
        ));
    }
    let Some(set) = patch
        .get("$set")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    else {
        return illegal("ERROR :: /patch/$set :: nothing to update");
    };
    if let Some(field) = set.keys().find(|k| !EDITABLE.contains(&k.as_str())) {
        return illegal(&format!(
            "ERROR :: /patch/$set/{field} :: field cannot be updated (only {})",
            EDITABLE.join(", ")
        ));
    }
    if let Some(field) = set.iter().find(|(_, v)| !v.is_string()).map(|(k, _)| k) {
        return illegal(&format!("ERROR :: /patch/$set/{field} :: must be a string"));
    }
    let commentary = set.get("commentary").and_then(Value::as_str);
    if let Some(c) = commentary {
        let length = c.encode_utf16().count();
        if length > super::api::LIMIT {
            return illegal(&format!("com.linkedin.publishing.util.common.ResponseException: ShareCommentary text length ({length} characters) exceeded the maximum allowed ({} characters)", super::api::LIMIT));
        }
    }
    let mut inner = sb.lock();
    let Some(author) = inner
        .posts
        .iter()
        .find(|p| p.urn == urn && !p.deleted)
        .map(|p| p.author.clone())
    else {
        return not_found(&urn);
    };
    if !acts_for(&inner, &who, &author, POSTING_ROLES) {
        return access_denied(
            "Not enough permissions to access: partnerApiPostsExternal.PARTIAL_UPDATE",
        );
    }
    let p = inner.post_mut(&urn).expect("found above");
    if matches!(p.content, Some(PostContent::Poll(_))) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            None,
            "com.linkedin.content.common.exception.BadRequestResponseException: A poll cannot be edited",
        );
    }
    if let Some(c) = commentary {
        p.commentary = c.to_string();
        p.text = ltf::visible_text(c);
    }
    p.edits.push(Edit {
        at: Utc::now(),
        set: set.clone(),
        commentary: p.commentary.clone(),
        text: p.text.clone(),
    });
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_post(
    State(sb): State<Sandbox>,
    Path(urn): Path<String>,
    headers: HeaderMap,
) -> Response {
    let who = match caller(&sb, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let mut inner = sb.lock();
    let Some(author) = inner
        .posts
        .iter()
        .find(|p| p.urn == urn)
        .map(|p| p.author.clone())
    else {
        return not_found(&urn);
    };
    if !acts_for(&inner, &who, &author, POSTING_ROLES) {
        return access_denied("Not enough permissions to access: partnerApiPostsExternal.DELETE");
    }
    let p = inner.post_mut(&urn).expect("found above");
    // Deleting twice is answered like the first time.
    if !p.deleted {
        p.deleted = true;
        p.deleted_at = Some(Utc::now());
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn comment(
    State(sb): State<Sandbox>,
    Path(urn): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let who = match caller(&sb, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let body = match json_object(&headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let actor = body.get("actor").and_then(Value::as_str);
    let object = body.get("object").and_then(Value::as_str);
    let text = body
        .get("message")
        .and_then(|m| m.get("text"))
        .and_then(Value::as_str);
    let missing: Vec<String> = [
        ("/actor", actor.is_none()),
        ("/object", object.is_none()),
        ("/message/text", text.is_none()),
    ]
    .into_iter()
    .filter(|(_, m)| *m)
    .map(|(f, _)| {
        format!("ERROR :: {f} :: field is required but not found and has no default value")
    })
    .collect();
    let (Some(actor), Some(object), Some(text)) = (actor, object, text) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            None,
            &missing.join("\n"),
        );
    };
    if object != urn {
        return illegal(&format!(
            "ERROR :: /object :: {object} is not the post in the path ({urn})"
        ));
    }
    let mut inner = sb.lock();
    if inner.settings.comments_forbidden || !acts_for(&inner, &who, actor, POSTING_ROLES) {
        return access_denied("Not enough permissions to access: partnerApiSocialActions.CREATE");
    }
    inner.next_comment += 1;
    let n = inner.next_comment;
    let Some(p) = inner.posts.iter_mut().find(|p| p.urn == urn && !p.deleted) else {
        return not_found(&urn);
    };
    let activity = urn
        .rsplit(':')
        .next()
        .map_or_else(|| urn.clone(), |id| format!("urn:li:activity:{id}"));
    let comment_urn = format!("urn:li:comment:({activity},{n})");
    p.comments.push(Comment {
        urn: comment_urn.clone(),
        actor: actor.to_string(),
        text: text.to_string(),
        created_at: Utc::now(),
    });
    let mut resp = (
        StatusCode::CREATED,
        Json(json!({
            "actor": actor,
            "object": object,
            "message": {"text": text},
            "id": n.to_string(),
            "commentUrn": comment_urn,
        })),
    )
        .into_response();
    resp.headers_mut().insert(
        "x-restli-id",
        HeaderValue::from_str(&comment_urn).expect("ascii urn"),
    );
    resp
}
