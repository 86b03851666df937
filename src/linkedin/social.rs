//! The calls on a post once it is published: its first comment
//! (`POST /rest/socialActions/{urn}/comments`), an edit of its commentary (`POST
//! /rest/posts/{urn}` with `X-RestLi-Method: PARTIAL_UPDATE`) and its deletion
//! (`DELETE /rest/posts/{urn}`). Like the rest of the client, it classifies answers and
//! decides nothing about retries.

use reqwest::header::CONTENT_TYPE;
use serde::Serialize;

use super::{check, send, urlencode, ApiError, Client};
use crate::secret::Secret;

/// `{"actor", "object", "message": {"text"}}`. Comments are not Little Text: the text goes
/// as the author wrote it.
#[derive(Debug, Serialize)]
struct CommentRequest<'a> {
    actor: &'a str,
    object: &'a str,
    message: CommentMessage<'a>,
}

#[derive(Debug, Serialize)]
struct CommentMessage<'a> {
    text: &'a str,
}

/// `{"patch": {"$set": {"commentary": …}}}`: only the text changes.
#[derive(Debug, Serialize)]
struct CommentaryPatch<'a> {
    patch: PatchSet<'a>,
}

#[derive(Debug, Serialize)]
struct PatchSet<'a> {
    #[serde(rename = "$set")]
    set: SetCommentary<'a>,
}

#[derive(Debug, Serialize)]
struct SetCommentary<'a> {
    commentary: &'a str,
}

/// What LinkedIn said to a comment it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commented {
    /// From `x-restli-id` (or `x-linkedin-id`); `None` if the 201 named none. The comment is
    /// posted either way.
    pub urn: Option<String>,
}

impl Client {
    /// Comments on `post_urn` as `actor` (the post's author): 201.
    pub async fn comment(
        &self,
        token: &Secret,
        post_urn: &str,
        actor: &str,
        text: &str,
    ) -> Result<Commented, ApiError> {
        let url = format!(
            "{}/rest/socialActions/{}/comments",
            self.api,
            urlencode(post_urn)
        );
        let body = CommentRequest {
            actor,
            object: post_urn,
            message: CommentMessage { text },
        };
        let req = self
            .http
            .post(&url)
            .headers(self.versioned(token))
            .header(CONTENT_TYPE, "application/json")
            .json(&body);
        let resp = check(send(req, &url).await?).await?;
        let urn = ["x-restli-id", "x-linkedin-id"]
            .iter()
            .find_map(|h| resp.headers().get(*h)?.to_str().ok().map(str::to_string))
            .filter(|u| !u.trim().is_empty());
        Ok(Commented { urn })
    }

    /// Sets the commentary (Little Text, escaped as for the post) of a published post: 204.
    pub async fn edit_commentary(
        &self,
        token: &Secret,
        post_urn: &str,
        commentary: &str,
    ) -> Result<(), ApiError> {
        let url = format!("{}/rest/posts/{}", self.api, urlencode(post_urn));
        let body = CommentaryPatch {
            patch: PatchSet {
                set: SetCommentary { commentary },
            },
        };
        let req = self
            .http
            .post(&url)
            .headers(self.versioned(token))
            .header("X-RestLi-Method", "PARTIAL_UPDATE")
            .header(CONTENT_TYPE, "application/json")
            .json(&body);
        check(send(req, &url).await?).await?;
        Ok(())
    }

    /// Deletes a published post: 204, also for one already deleted.
    pub async fn delete_post(&self, token: &Secret, post_urn: &str) -> Result<(), ApiError> {
        let url = format!("{}/rest/posts/{}", self.api, urlencode(post_urn));
        let req = self.http.delete(&url).headers(self.versioned(token));
        check(send(req, &url).await?).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_as_linkedin_documents_them() {
        let c = CommentRequest {
            actor: "urn:li:person:abc",
            object: "urn:li:share:1",
            message: CommentMessage {
                text: "Slides (here) #1",
            },
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"actor": "urn:li:person:abc", "object": "urn:li:share:1", "message": {"text": "Slides (here) #1"}})
        );
        let p = CommentaryPatch {
            patch: PatchSet {
                set: SetCommentary {
                    commentary: "New \\(text\\)",
                },
            },
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"patch": {"$set": {"commentary": "New \\(text\\)"}}})
        );
    }
}
