//! The LinkedIn endpoints the sandbox emulates, answering as LinkedIn documents:
//! `POST/GET /rest/posts`, `GET /v2/userinfo`, `GET /rest/organizationAcls`, and the checks
//! every endpoint shares (version headers, bearer token, who may act for an author or owner).

// The checks' errors are finished HTTP answers; boxing them would buy nothing here.
#![allow(clippy::result_large_err)]

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{post_content, Inner, Sandbox, StoredPost, TokenInfo};
use crate::linkedin::wire::{
    Elements, ErrorBody, OrganizationAcl, PostElement, UserInfo, POSTING_ROLES,
};

pub(super) const LIMIT: usize = 3000;

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/rest/posts", post(create_post).get(find_posts))
        .route("/v2/userinfo", get(userinfo))
        .route("/rest/organizationAcls", get(organization_acls))
}

/// LinkedIn's error answer: JSON body plus `x-restli-error-response: true`.
pub fn error(
    status: StatusCode,
    service_code: Option<i64>,
    code: Option<&str>,
    message: &str,
) -> Response {
    let body = ErrorBody {
        status: Some(status.as_u16()),
        service_error_code: service_code,
        code: code.map(String::from),
        message: Some(message.to_string()),
        error: None,
        error_description: None,
        error_details: None,
    };
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut()
        .insert("x-restli-error-response", HeaderValue::from_static("true"));
    resp
}

/// A JSON request body as LinkedIn takes it: sent as `Content-Type: application/json` (the
/// notes: on every body), and an object.
pub(super) fn json_object(
    headers: &HeaderMap,
    body: &str,
) -> Result<serde_json::Map<String, Value>, Response> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(error(
            StatusCode::BAD_REQUEST,
            None,
            Some("ILLEGAL_ARGUMENT"),
            "Request body could not be converted to data map: Content-Type must be application/json",
        ));
    }
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            None,
            Some("ILLEGAL_ARGUMENT"),
            "Request body could not be converted to data map",
        )),
    }
}

/// Checks `LinkedIn-Version` (present, active: the last twelve months) and the protocol header.
pub(super) fn check_versioned(headers: &HeaderMap) -> Result<(), Response> {
    let Some(v) = headers
        .get("linkedin-version")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            None,
            Some("VERSION_MISSING"),
            "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
        ));
    };
    let month = v
        .get(..6)
        .filter(|m| v.len() == 6 && m.chars().all(|c| c.is_ascii_digit()))
        .and_then(|m| Some((m[..4].parse::<i32>().ok()?, m[4..].parse::<u32>().ok()?)));
    let now = Utc::now();
    let active = month.is_some_and(|(y, m)| {
        let age = (now.year() - y) * 12 + now.month() as i32 - m as i32;
        (1..=12).contains(&m) && (0..12).contains(&age)
    });
    if !active {
        let echoed = format!("{v}01");
        return Err(error(
            StatusCode::UPGRADE_REQUIRED,
            None,
            Some("NONEXISTENT_VERSION"),
            &format!("Requested version {echoed} is not active"),
        ));
    }
    if headers
        .get("x-restli-protocol-version")
        .and_then(|v| v.to_str().ok())
        != Some("2.0.0")
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            None,
            Some("ILLEGAL_ARGUMENT"),
            "X-Restli-Protocol-Version: 2.0.0 is required for this resource",
        ));
    }
    Ok(())
}

/// The bearer token's holder, or LinkedIn's 401.
pub(super) fn authenticate(sb: &Sandbox, headers: &HeaderMap) -> Result<TokenInfo, Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let (info, new_token_refused) = {
        let inner = sb.lock();
        let info = token.and_then(|t| inner.tokens.get(t).cloned());
        (info, inner.settings.new_token_refused)
    };
    let brand_new = |issued_at: DateTime<Utc>| {
        chrono::Duration::from_std(new_token_refused).is_ok_and(|d| Utc::now() - issued_at < d)
    };
    match info {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            Some(65600),
            Some("INVALID_ACCESS_TOKEN"),
            "Invalid access token",
        )),
        Some(i) if i.revoked || brand_new(i.issued_at) => Err(error(
            StatusCode::UNAUTHORIZED,
            Some(65601),
            Some("REVOKED_ACCESS_TOKEN"),
            "The token used in the request has been revoked by the user",
        )),
        Some(i) if i.expires_at <= Utc::now() => Err(error(
            StatusCode::UNAUTHORIZED,
            Some(65602),
            Some("EXPIRED_ACCESS_TOKEN"),
            "The token used in the request has expired",
        )),
        Some(i) => Ok(i),
    }
}

pub(super) fn access_denied(what: &str) -> Response {
    error(
        StatusCode::FORBIDDEN,
        Some(100),
        Some("ACCESS_DENIED"),
        what,
    )
}

async fn create_post(State(sb): State<Sandbox>, headers: HeaderMap, body: String) -> Response {
    if let Err(r) = check_versioned(&headers) {
        return r;
    }
    let who = match authenticate(&sb, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let body = match json_object(&headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(r) = post_content::unknown_field(&body) {
        return r;
    }
    let has_content = body.contains_key("content");
    let required: &[&str] = if has_content {
        &["author", "visibility", "distribution", "lifecycleState"]
    } else {
        &[
            "author",
            "commentary",
            "visibility",
            "distribution",
            "lifecycleState",
        ]
    };
    let missing: Vec<String> = required
        .iter()
        .filter(|f| body.get(**f).is_none_or(Value::is_null))
        .map(|f| {
            format!("ERROR :: /{f} :: field is required but not found and has no default value")
        })
        .collect();
    if !missing.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            None,
            &missing.join("\n"),
        );
    }
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (author, commentary, visibility) = (text("author"), text("commentary"), text("visibility"));
    if text("lifecycleState") != "PUBLISHED" {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            None,
            "ERROR :: /lifecycleState :: must be PUBLISHED on creation",
        );
    }
    if !["PUBLIC", "CONNECTIONS", "LOGGED_IN"].contains(&visibility.as_str()) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            None,
            &format!("ERROR :: /visibility :: invalid enum value {visibility}"),
        );
    }
    if body
        .get("distribution")
        .and_then(|d| d.get("feedDistribution"))
        .is_none()
    {
        return error(StatusCode::UNPROCESSABLE_ENTITY, None, None, "ERROR :: /distribution/feedDistribution :: field is required but not found and has no default value");
    }
    if let Err(r) = may_post_as(&sb, &who, &author, &visibility) {
        return r;
    }
    let length = commentary.encode_utf16().count();
    if length > LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            None,
            Some("ILLEGAL_ARGUMENT"),
            &format!("com.linkedin.publishing.util.common.ResponseException: ShareCommentary text length ({length} characters) exceeded the maximum allowed ({LIMIT} characters)"),
        );
    }
    let content = match body.get("content") {
        None | Some(Value::Null) => None,
        Some(c) => {
            let checked = post_content::check(&sb.lock(), &author, c, Utc::now());
            match checked {
                Ok(c) => Some(c),
                Err(r) => return r,
            }
        }
    };
    let mut inner = sb.lock();
    let now = Utc::now();
    let window = inner.settings.duplicate_window;
    let key = (author.clone(), super::duplicate_key(&commentary));
    let earlier = inner
        .latest
        .get(&key)
        .map(|&i| &inner.posts[i])
        .filter(|p| !p.deleted)
        .filter(|p| (now - p.received_at).to_std().is_ok_and(|age| age < window));
    if let Some(earlier) = earlier {
        let body = json!({
            "errorDetailType": "com.linkedin.common.error.BadRequest",
            "message": format!("com.linkedin.content.common.exception.BadRequestResponseException: Content is a duplicate of {}", earlier.urn),
            "errorDetails": {"inputErrors": [{"description": "Duplicate post is detected", "input": {}, "code": "DUPLICATE_POST"}]},
            "status": 422
        });
        let mut resp = (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
        resp.headers_mut()
            .insert("x-restli-error-response", HeaderValue::from_static("true"));
        return resp;
    }
    let urn = inner.store(author, commentary, visibility, now, content);
    let mut resp = StatusCode::CREATED.into_response();
    resp.headers_mut().insert(
        "x-restli-id",
        HeaderValue::from_str(&urn).expect("ascii urn"),
    );
    resp
}

/// LinkedIn's author checks: a member posts as themself with `w_member_social`; a page needs
/// `w_organization_social` and a posting role.
fn may_post_as(
    sb: &Sandbox,
    who: &TokenInfo,
    author: &str,
    visibility: &str,
) -> Result<(), Response> {
    if author.starts_with("urn:li:person:") {
        if !acts_for(&sb.lock(), who, author, POSTING_ROLES) {
            return Err(access_denied(
                "Not enough permissions to access: partnerApiPostsExternal.CREATE",
            ));
        }
        return Ok(());
    }
    if author.starts_with("urn:li:organization:") {
        if visibility == "CONNECTIONS" {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                None,
                "ERROR :: /visibility :: CONNECTIONS is not allowed for organization authors",
            ));
        }
        if !acts_for(&sb.lock(), who, author, POSTING_ROLES) {
            return Err(access_denied("Field Value validation failed in REQUEST_BODY: Data Processing Exception while processing fields [/author]"));
        }
        return Ok(());
    }
    Err(error(
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        None,
        &format!("ERROR :: /author :: {author:?} is not a valid person or organization URN"),
    ))
}

/// Whether the token may act as `actor` (post, upload, comment, edit, delete): a member as
/// themself with `w_member_social`; a page with `w_organization_social` and one of `roles`.
pub(super) fn acts_for(inner: &Inner, who: &TokenInfo, actor: &str, roles: &[&str]) -> bool {
    let has = |s: &str| who.scopes.iter().any(|x| x == s);
    if let Some(person) = actor.strip_prefix("urn:li:person:") {
        return person == who.sub && has("w_member_social");
    }
    if !actor.starts_with("urn:li:organization:") || !has("w_organization_social") {
        return false;
    }
    let person = format!("urn:li:person:{}", who.sub);
    inner
        .acls
        .iter()
        .any(|a| a.organization == actor && a.person == person && roles.contains(&a.role.as_str()))
}

#[derive(Deserialize)]
struct FinderQuery {
    q: Option<String>,
    author: Option<String>,
    count: Option<usize>,
    start: Option<usize>,
}

async fn find_posts(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Query(q): Query<FinderQuery>,
) -> Response {
    if let Err(r) = check_versioned(&headers) {
        return r;
    }
    let who = match authenticate(&sb, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (Some("author"), Some(author)) = (q.q.as_deref(), q.author) else {
        return error(
            StatusCode::BAD_REQUEST,
            None,
            Some("ILLEGAL_ARGUMENT"),
            "q=author and author= are required",
        );
    };
    // Organization posts need r_organization_social; members' own posts a restricted scope.
    if !author.starts_with("urn:li:organization:")
        || !who.scopes.iter().any(|s| s == "r_organization_social")
    {
        return access_denied(
            "Not enough permissions to access: partnerApiPostsExternal.FINDER-author",
        );
    }
    let inner = sb.lock();
    let mut posts: Vec<&StoredPost> = inner
        .posts
        .iter()
        .filter(|p| p.author == author && !p.deleted)
        .collect();
    // LAST_MODIFIED: an edit counts as a modification.
    let modified = |p: &StoredPost| p.edits.last().map_or(p.received_at, |e| e.at);
    posts.sort_by_key(|p| std::cmp::Reverse(modified(p)));
    let elements: Vec<PostElement> = posts
        .into_iter()
        .skip(q.start.unwrap_or(0))
        .take(q.count.unwrap_or(10).min(inner.settings.finder_max_count))
        .map(|p| PostElement {
            id: p.urn.clone(),
            author: p.author.clone(),
            commentary: p.commentary.clone(),
            created_at: Some(p.received_at.timestamp_millis()),
            published_at: Some(p.received_at.timestamp_millis()),
            last_modified_at: Some(modified(p).timestamp_millis()),
        })
        .collect();
    Json(Elements { elements }).into_response()
}

async fn userinfo(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let who = match authenticate(&sb, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    // The notes: userinfo needs `openid profile`.
    if !["openid", "profile"]
        .iter()
        .all(|need| who.scopes.iter().any(|s| s == need))
    {
        return access_denied("Not enough permissions to access: userinfo.GET.NO_VERSION");
    }
    let name = sb
        .lock()
        .members
        .iter()
        .find(|(_, sub)| **sub == who.sub)
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    Json(UserInfo { sub: who.sub, name }).into_response()
}

/// The `roleAssignee` finder's filters: `role` and `state`, each optional.
#[derive(Deserialize)]
struct AclQuery {
    q: Option<String>,
    role: Option<String>,
    state: Option<String>,
}

async fn organization_acls(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Query(query): Query<AclQuery>,
) -> Response {
    if let Err(r) = check_versioned(&headers) {
        return r;
    }
    if query.q.as_deref() != Some("roleAssignee") {
        return error(
            StatusCode::BAD_REQUEST,
            None,
            Some("ILLEGAL_ARGUMENT"),
            "organizationAcls needs the finder q=roleAssignee",
        );
    }
    if query.role.is_none() && sb.lock().settings.acls_need_role {
        return error(
            StatusCode::BAD_REQUEST,
            None,
            Some("ILLEGAL_ARGUMENT"),
            "Query parameter role is required",
        );
    }
    let who = match authenticate(&sb, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    if !who
        .scopes
        .iter()
        .any(|s| s == "r_organization_admin" || s == "rw_organization_admin")
    {
        return access_denied(
            "Not enough permissions to access: organizationAcls.FINDER-roleAssignee",
        );
    }
    let person = format!("urn:li:person:{}", who.sub);
    let elements = sb
        .lock()
        .acls
        .iter()
        .filter(|a| a.person == person)
        .filter(|a| query.role.as_deref().is_none_or(|r| r == a.role))
        // Every role the sandbox grants is approved.
        .filter(|_| query.state.as_deref().is_none_or(|st| st == "APPROVED"))
        .map(|a| OrganizationAcl {
            organization: a.organization.clone(),
            role: a.role.clone(),
            role_assignee: a.person.clone(),
            state: "APPROVED".into(),
        })
        .collect();
    Json(Elements { elements }).into_response()
}
