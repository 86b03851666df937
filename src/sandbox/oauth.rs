//! The sandbox's OAuth 2.0 endpoints, as LinkedIn documents them: `GET /oauth/v2/authorization`
//! (auto-approves as the configured member, or declines), `POST /oauth/v2/accessToken` for the
//! authorization-code and refresh-token grants, with single-use expiring codes and refresh
//! tokens that keep their first expiry.

use axum::extract::{Form, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

use super::control::random_token;
use super::{Sandbox, TokenInfo};
use crate::linkedin::wire::{ErrorBody, TokenResponse};
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub(super) struct Code {
    client_id: String,
    redirect_uri: String,
    member: String,
    scopes: Vec<String>,
    expires_at: DateTime<Utc>,
    used: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Refresh {
    pub member: String,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/oauth/v2/authorization", get(authorize))
        .route("/oauth/v2/accessToken", post(access_token))
}

fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_string(),
    )
        .into_response()
}

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = ErrorBody {
        error: Some(error.into()),
        error_description: Some(description.into()),
        ..ErrorBody::default()
    };
    (status, Json(body)).into_response()
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

fn redirect_allowed(registered: &[String], uri: &str) -> bool {
    if registered.is_empty() {
        // Nothing registered: any loopback URI, so tests can use free ports.
        // The config's pure check: no client code path runs here.
        return url::Url::parse(uri).is_ok_and(|u| crate::config::is_loopback_url(&u));
    }
    registered.iter().any(|r| r == uri)
}

async fn authorize(
    State(sb): State<Sandbox>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let mut inner = sb.lock();
    let s = inner.settings.clone();
    if get("response_type") != "code" {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid response_type: must be code",
        );
    }
    if get("client_id") != s.client_id {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid client_id: the application is not known",
        );
    }
    let redirect_uri = get("redirect_uri");
    if !redirect_allowed(&s.redirect_uris, &redirect_uri) {
        return page(
            StatusCode::BAD_REQUEST,
            "The redirect_uri does not match the registered value",
        );
    }
    let state = get("state");
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    if s.deny {
        return redirect(format!(
            "{redirect_uri}{sep}error=user_cancelled_authorize&error_description={}&state={}",
            enc("The user cancelled the authorization"),
            enc(&state)
        ));
    }
    let requested: Vec<String> = get("scope")
        .split([' ', ','])
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect();
    let scopes = match &s.grant_scopes {
        Some(allowed) => requested
            .into_iter()
            .filter(|r| allowed.contains(r))
            .collect(),
        None => requested,
    };
    let code = format!("sbxcode{}", random_token());
    inner.codes.insert(
        code.clone(),
        Code {
            client_id: s.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            member: s.login_member.clone(),
            scopes,
            expires_at: Utc::now() + s.code_ttl,
            used: false,
        },
    );
    redirect(format!(
        "{redirect_uri}{sep}code={}&state={}",
        enc(&code),
        enc(&state)
    ))
}

async fn access_token(
    State(sb): State<Sandbox>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let mut inner = sb.lock();
    let s = inner.settings.clone();
    if get("client_id") != s.client_id || get("client_secret") != s.client_secret {
        return token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed: the client_id or client_secret is wrong",
        );
    }
    let now = Utc::now();
    let (member, scopes, refresh) = match get("grant_type").as_str() {
        "authorization_code" => {
            let code = inner.codes.get_mut(&get("code"));
            let valid = code.as_ref().is_some_and(|c| {
                !c.used
                    && c.expires_at > now
                    && c.redirect_uri == get("redirect_uri")
                    && c.client_id == get("client_id")
            });
            let Some(code) = code.filter(|_| valid) else {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code. Or authorization code expired. Or external member binding exists",
                );
            };
            code.used = true;
            let (member, scopes) = (code.member.clone(), code.scopes.clone());
            let refresh = s.issue_refresh_tokens.then(|| {
                let rt = format!("AQrsbx{}", random_token());
                inner.refresh.insert(
                    rt.clone(),
                    Refresh {
                        member: member.clone(),
                        scopes: scopes.clone(),
                        expires_at: now + s.refresh_ttl,
                        revoked: false,
                    },
                );
                rt
            });
            (member, scopes, refresh)
        }
        "refresh_token" => {
            let rt = get("refresh_token");
            if rt.is_empty() {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "A required parameter \"refresh_token\" is missing",
                );
            }
            match inner.refresh.get(&rt) {
                Some(r) if !r.revoked && r.expires_at > now => (r.member.clone(), r.scopes.clone(), Some(rt)),
                _ => {
                    return token_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "The provided authorization grant or refresh token is invalid, expired or revoked",
                    )
                }
            }
        }
        other => {
            return token_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Unsupported grant type {other:?}"),
            );
        }
    };
    let sub = inner.member_sub(&member);
    let access = format!("AQsbx{}", random_token());
    inner.tokens.insert(
        access.clone(),
        TokenInfo {
            sub,
            scopes: scopes.clone(),
            expires_at: now + s.access_ttl,
            revoked: false,
            issued_at: now,
        },
    );
    let refresh_left = refresh
        .as_ref()
        .and_then(|rt| inner.refresh.get(rt))
        .map(|r| (r.expires_at - now).num_seconds().max(0));
    // The notes: an `id_token` when `openid` was asked. Opaque here (nobody reads it), but
    // present, so the client is shown one and must keep it out of every output.
    let id_token = scopes
        .iter()
        .any(|sc| sc == "openid")
        .then(|| Secret::new(format!("eyJsbx.{}.sig", random_token())));
    Json(TokenResponse {
        access_token: Secret::new(access),
        expires_in: s.access_ttl.as_secs() as i64,
        refresh_token: refresh.map(Secret::new),
        refresh_token_expires_in: refresh_left,
        scope: scopes.join(","),
        id_token,
    })
    .into_response()
}
