//! `lipost delete ID`: deletes a published post on LinkedIn (DELETE, 204) and records it as
//! `deleted`, with an attempt row. Idempotent: a post already deleted is said so, exit 0.
//! Works with or without a running daemon: the token comes from the store (refreshed, or
//! minted in the sandbox, by the same code the daemon uses).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use chrono::Utc;

use crate::auth::Tokens;
use crate::config::{Config, Live};
use crate::linkedin::ApiError;
use crate::post::{AttemptOutcome, AttemptResult, PostState};
use crate::store::{Handle, Store};

pub async fn delete(config: &Config, store: Store, id: &str) -> Result<()> {
    let post = store.get(id)?;
    match post.state {
        PostState::Published => {}
        PostState::Deleted => {
            println!(
                "{id} is already deleted ({})",
                post.post_urn.as_deref().unwrap_or("no URN")
            );
            return Ok(());
        }
        PostState::Scheduled => bail!(
            "{id} is scheduled, not published: nothing of it is on LinkedIn. To stop it going out: `lipost cancel {id}`"
        ),
        PostState::Publishing => bail!(
            "{id} is being published right now: run `lipost delete {id}` again once `lipost show {id}` says published"
        ),
        PostState::Dead => bail!(
            "{id} is dead, not published. If it is on LinkedIn after all (`lipost dead` says in_doubt or duplicate), record it with `lipost mark-published {id} URN` first, then delete it; otherwise `lipost cancel {id}` withdraws it"
        ),
        PostState::Cancelled => bail!(
            "{id} was cancelled, not published. If it is on LinkedIn after all (a try of it was in doubt: `lipost show {id}`), record it with `lipost mark-published {id} URN` first, then delete it"
        ),
    }
    let urn = post
        .post_urn
        .clone()
        .with_context(|| format!("{id} is published but has no URN recorded"))?;
    let account = config.account(&post.account).with_context(|| {
        format!(
            "account {:?} of {id} is not in the config: add it back to delete the post",
            post.account
        )
    })?;
    let member = account.token_account().to_string();
    let client = super::auth::client(config)?;
    let (_config_tx, live) = Live::new(config.clone());
    let store = Handle::new(store);
    let tokens = Arc::new(Tokens::new(live, client.clone(), store.clone()));

    let started = Utc::now();
    let mut cred = tokens.get(&member).await?;
    let mut answer = client.delete_post(&cred.token, &urn).await;
    if let Err(ApiError::Status { status: 401, .. }) = &answer {
        // Once, like a publish: a refreshed (or replaced) token may be taken. Where none can
        // be had, the 401 stands and is recorded below like any refusal.
        if let Ok(wait) = tokens.unauthorized(&member, &cred.token).await {
            tokio::time::sleep(wait).await;
            if let Ok(fresh) = tokens.get(&member).await {
                cred = fresh;
                answer = client.delete_post(&cred.token, &urn).await;
            }
        }
    }
    let (id_s, now) = (id.to_string(), Utc::now());
    match answer {
        Ok(()) => {
            let result = AttemptResult {
                http_status: Some(204),
                outcome: AttemptOutcome::Deleted,
                ..AttemptResult::message(format!("deleted on LinkedIn ({urn})"))
            };
            store
                .call(move |s| s.delete_post(&id_s, &result, started, now))
                .await?;
            println!("deleted {id} ({urn}) on LinkedIn");
            Ok(())
        }
        Err(e) => {
            let mut result = crate::publisher::result_of(&e);
            result.outcome = AttemptOutcome::DeleteFailed;
            store
                .call(move |s| s.delete_failed(&id_s, &result, started, now))
                .await?;
            let what_now = match &e {
                // LinkedIn answers 204 for a post already deleted: a 404 is a URN it does not
                // know (mistyped in `mark-published`, or a sandbox that has since restarted).
                ApiError::Status { status: 404, .. } => format!(
                    "LinkedIn knows no post {urn} (a URN mistyped in `mark-published`, or a sandbox restarted since): look for the post on LinkedIn. It stays recorded as published; trying again will not help"
                ),
                ApiError::Status {
                    status: 400..=499, ..
                } if !matches!(e, ApiError::Status { status: 429, .. }) => {
                    format!("It is still published; fix what LinkedIn says, then `lipost delete {id}` again")
                }
                _ => format!("It is still published; run `lipost delete {id}` again later"),
            };
            bail!("LinkedIn did not delete {id} ({urn}): {e}. {what_now}")
        }
    }
}
