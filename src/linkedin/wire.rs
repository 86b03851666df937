//! JSON shapes on the wire, as LinkedIn documents them. Shared by the client and the sandbox:
//! the only code the two have in common.

use serde::{Deserialize, Serialize, Serializer};

use crate::secret::Secret;

/// Page roles that may post for an organization (LinkedIn's pages name all of these).
pub const POSTING_ROLES: &[&str] = &[
    "ADMINISTRATOR",
    "DIRECT_SPONSORED_CONTENT_POSTER",
    "CONTENT_ADMIN",
    "LEAD_GEN_FORMS_MANAGER",
    "RECRUITING_POSTER",
];

/// Page roles that may post a video for an organization: fewer than for other posts (the
/// Videos API names only these two).
pub const VIDEO_ROLES: &[&str] = &["ADMINISTRATOR", "DIRECT_SPONSORED_CONTENT_POSTER"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    pub feed_distribution: String,
    pub target_entities: Vec<serde_json::Value>,
    pub third_party_distribution_channels: Vec<serde_json::Value>,
}

/// The body of `POST /rest/posts` for a text post.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PostRequest {
    pub author: String,
    pub commentary: String,
    pub visibility: String,
    pub distribution: Distribution,
    pub lifecycle_state: String,
    pub is_reshare_disabled_by_author: bool,
    /// Absent for a text post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<PostContent>,
}

/// A post's `content`: one kind per post.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PostContent {
    /// One image, a document or a video.
    Media(MediaContent),
    /// 2 to 20 images.
    MultiImage(MultiImage),
    Article(ArticleContent),
    Poll(PollContent),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MediaContent {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MultiImage {
    pub images: Vec<ImageRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArticleContent {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An image URN, uploaded like any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PollContent {
    pub question: String,
    pub options: Vec<PollOption>,
    pub settings: PollSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PollOption {
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PollSettings {
    /// `ONE_DAY`, `THREE_DAYS`, `SEVEN_DAYS` or `FOURTEEN_DAYS`.
    pub duration: String,
}

impl PostRequest {
    pub fn text(author: &str, commentary: &str, visibility: &str) -> PostRequest {
        PostRequest {
            author: author.to_string(),
            commentary: commentary.to_string(),
            visibility: visibility.to_string(),
            distribution: Distribution {
                feed_distribution: "MAIN_FEED".into(),
                target_entities: vec![],
                third_party_distribution_channels: vec![],
            },
            lifecycle_state: "PUBLISHED".into(),
            is_reshare_disabled_by_author: false,
            content: None,
        }
    }
}

/// LinkedIn's error body (API errors and token-endpoint errors alike).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_error_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Token endpoint: `invalid_request`, `invalid_grant`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Snake case, unlike the API's fields: the token endpoint's own spelling.
    #[serde(
        rename = "error_description",
        alias = "errorDescription",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_description: Option<String>,
    /// `{"inputErrors": [{"code": "DUPLICATE_POST", …}]}` on a duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<serde_json::Value>,
}

/// The token endpoint's answer. Every token in it is a [`Secret`], so its `Debug` prints
/// `[redacted]` for them; only serializing (the sandbox answering) writes them out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    #[serde(serialize_with = "exposed")]
    pub access_token: Secret,
    pub expires_in: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "exposed_opt"
    )]
    pub refresh_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_expires_in: Option<i64>,
    #[serde(default)]
    pub scope: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "exposed_opt"
    )]
    pub id_token: Option<Secret>,
}

fn exposed<S: Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose())
}

fn exposed_opt<S: Serializer>(s: &Option<Secret>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_some(s.expose()),
        None => ser.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Elements<T> {
    pub elements: Vec<T>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostElement {
    pub id: String,
    pub author: String,
    #[serde(default)]
    pub commentary: String,
    /// Epoch milliseconds, as LinkedIn sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<i64>,
    /// What `sortBy=LAST_MODIFIED` orders by; an edit moves it, so the creation time does
    /// not stand in for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationAcl {
    pub organization: String,
    pub role: String,
    pub role_assignee: String,
    pub state: String,
}

/// Sandbox only: `POST /_sandbox/token` mints a token for a member, no browser involved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxTokenRequest {
    pub member: String,
    pub scope: String,
    #[serde(default)]
    pub organizations: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_debug_masks_every_token_and_the_wire_form_keeps_them() {
        let json = r#"{"access_token":"AQV-access","expires_in":5184000,"refresh_token":"AQX-refresh","scope":"openid","id_token":"eyJ-id"}"#;
        let t: TokenResponse = serde_json::from_str(json).unwrap();
        let debug = format!("{t:?}");
        for secret in ["AQV-access", "AQX-refresh", "eyJ-id"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert_eq!(t.access_token.expose(), "AQV-access");
        let back = serde_json::to_string(&t).unwrap();
        assert!(back.contains("\"access_token\":\"AQV-access\""), "{back}");
        assert!(back.contains("\"refresh_token\":\"AQX-refresh\""), "{back}");
    }
}
