//! The post lifecycle: states, the legal transitions between them, and the records the store
//! keeps (posts, attempts, dead letters). Plain data; the store is what persists it.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PostState {
    /// Waiting for `next_attempt_at`.
    Scheduled,
    /// Claimed: a request may be on its way to LinkedIn. Only from here is anything sent.
    Publishing,
    /// On LinkedIn, `post_urn` set.
    Published,
    /// Given up; a row in `dead_letters` says why.
    Dead,
    /// Withdrawn by the operator.
    Cancelled,
    /// Was on LinkedIn; deleted there by `lipost delete` (`post_urn` kept).
    Deleted,
}

impl PostState {
    pub const ALL: [PostState; 6] = [
        PostState::Scheduled,
        PostState::Publishing,
        PostState::Published,
        PostState::Dead,
        PostState::Cancelled,
        PostState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PostState::Scheduled => "scheduled",
            PostState::Publishing => "publishing",
            PostState::Published => "published",
            PostState::Dead => "dead",
            PostState::Cancelled => "cancelled",
            PostState::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<PostState> {
        PostState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for PostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every legal move of a post. The store applies a transition only to a post in one of its
/// `from` states, in the same statement, so an illegal move cannot happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The scheduler takes a due post; committed before any request leaves.
    Claim,
    /// LinkedIn confirmed the post (201, or found / duplicate-of for an in-doubt one).
    Publish,
    /// A try failed in a way worth repeating: back to waiting.
    Reschedule,
    /// A try failed for good, or the budget ran out.
    Kill,
    /// A scheduled post is too late to send (lateness ran out while held).
    Expire,
    /// The daemon found a claimed post at start-up: it is in doubt, to be resolved.
    Recover,
    /// Shutdown came before a claimed post's request left: back to waiting, not in doubt.
    Release,
    /// A new draft with the same id.
    Replace,
    /// `lipost retry`.
    Requeue,
    /// `lipost cancel`.
    Cancel,
    /// `lipost mark-published`: the operator found it on LinkedIn.
    MarkPublished,
    /// `lipost delete`: LinkedIn deleted the published post (204).
    Delete,
}

impl Transition {
    pub fn from(self) -> &'static [PostState] {
        use PostState::*;
        match self {
            Transition::Claim => &[Scheduled],
            Transition::Publish
            | Transition::Reschedule
            | Transition::Kill
            | Transition::Recover
            | Transition::Release => &[Publishing],
            Transition::Expire => &[Scheduled],
            Transition::Replace => &[Scheduled, Dead, Cancelled],
            Transition::Requeue => &[Dead],
            Transition::Cancel => &[Scheduled, Dead],
            // A cancelled post found on LinkedIn after all is recorded, so `delete` can
            // take it down.
            Transition::MarkPublished => &[Scheduled, Dead, Cancelled],
            Transition::Delete => &[Published],
        }
    }

    pub fn to(self) -> PostState {
        use PostState::*;
        match self {
            Transition::Claim => Publishing,
            Transition::Publish | Transition::MarkPublished => Published,
            Transition::Reschedule
            | Transition::Recover
            | Transition::Release
            | Transition::Replace
            | Transition::Requeue => Scheduled,
            Transition::Kill | Transition::Expire => Dead,
            Transition::Cancel => Cancelled,
            Transition::Delete => Deleted,
        }
    }
}

/// A post as the store holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Post {
    pub id: String,
    pub account: String,
    pub state: PostState,
    pub due_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub post_urn: Option<String>,
    pub commentary: String,
    pub text: String,
    pub visibility: String,
    pub source_file: Option<String>,
    /// Tries that count against `max_attempts` since the last (re)queue.
    pub attempts_used: u32,
    /// Consecutive 429s, which count against lateness instead.
    pub rate_limited: u32,
    /// Set while a try may have reached LinkedIn without us knowing: the start of that try.
    pub in_doubt_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    /// The posting slot this post holds, if it took one.
    pub slot_at: Option<DateTime<Utc>>,
    /// Why it waits, while it is held (`hold_until` set); see [`HoldReason`].
    pub hold_reason: Option<HoldReason>,
    pub hold_until: Option<DateTime<Utc>>,
    /// Attachments, link card or poll; `None` for a text post.
    pub content: Option<crate::content::Content>,
    /// Posted as a comment by the post's author once the post is published.
    pub first_comment: Option<String>,
}

/// One try, as recorded in `attempts`.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub id: i64,
    pub post_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub service_error_code: Option<i64>,
    pub message: Option<String>,
    pub outcome: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Why a post was given up, as recorded in `dead_letters`.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub post_id: String,
    pub account: String,
    pub reason: String,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What the store records when a try ends.
#[derive(Debug, Clone, Default)]
pub struct AttemptResult {
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub service_error_code: Option<i64>,
    pub message: Option<String>,
    pub outcome: AttemptOutcome,
}

impl AttemptResult {
    /// A result that only carries a message.
    pub fn message(message: String) -> AttemptResult {
        AttemptResult {
            message: Some(message),
            ..AttemptResult::default()
        }
    }
}

/// Declares a contract enum: one `as_str` spelling per variant, the only place it is written.
macro_rules! spelled {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v,)+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s,)+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|x| x.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

/// For the other contract enums (the `media` table's status, steps and outcomes).
pub(crate) use spelled;

spelled! {
    /// How one try ended: `attempts.outcome`, read by operators in SQL and in `lipost show`.
    #[derive(Default)]
    AttemptOutcome {
        /// Not decided yet (never stored: every settle sets one).
        #[default]
        Pending = "",
        /// 201 and the new post's URN.
        Published = "published",
        /// 201 for a post that was in doubt: the earlier try had not landed after all.
        PublishedAfterDoubt = "published_after_doubt",
        /// In doubt, and found among the page's posts.
        ResolvedFound = "resolved_found",
        /// LinkedIn refused a resend as a duplicate of the post it names: that one is ours.
        ResolvedDuplicate = "resolved_duplicate",
        /// The operator recorded it by hand (`lipost mark-published`).
        Resolved = "resolved",
        /// The try may have reached LinkedIn and no usable answer came back.
        InDoubt = "in_doubt",
        /// The daemon stopped (or the send failed inside) while the try was under way.
        Interrupted = "interrupted",
        /// A failure worth repeating after a backoff.
        Retry = "retry",
        /// 429: retried, counted against lateness.
        RateLimited = "rate_limited",
        /// Repeated 429s: the daily quota is spent, retried after midnight UTC.
        RateLimitedUntilReset = "rate_limited_until_reset",
        /// 401: the token was renewed and the post is sent again.
        Unauthorized = "unauthorized",
        /// The account needs a login: waiting, not failing.
        Held = "held",
        /// No token could be had for a transient reason.
        TokenUnavailable = "token_unavailable",
        /// 426: LinkedIn no longer serves the configured `linkedin.version`; held.
        ApiVersionRetired = "api_version_retired",
        /// Given up; the dead letter says why.
        Dead = "dead",
        /// An edit of a published post's text (PARTIAL_UPDATE, 204): the new text is live.
        Edited = "edited",
        /// An edit LinkedIn refused for good, or given up after its tries; the text stays.
        EditFailed = "edit_failed",
        /// `lipost delete`: LinkedIn deleted the post (204).
        Deleted = "deleted",
        /// `lipost delete` failed; the post is still published.
        DeleteFailed = "delete_failed",
    }
}

spelled! {
    /// Why a post was given up: `dead_letters.reason`.
    DeadReason {
        /// LinkedIn refused the post for good (4xx).
        Rejected = "rejected",
        /// LinkedIn calls it a duplicate of a post that is not this one (or names none).
        Duplicate = "duplicate",
        /// A try may have reached LinkedIn and it could not be settled: check the feed.
        InDoubt = "in_doubt",
        /// `retry.max_attempts` tries failed.
        AttemptsExhausted = "attempts_exhausted",
        /// Past `retry.max_lateness`.
        TooLate = "too_late",
        /// Its account is no longer in the config.
        AccountRemoved = "account_removed",
        /// LinkedIn could not process one of its assets (`PROCESSING_FAILED`), or the upload
        /// failed for good: never created, so it cannot be live.
        MediaFailed = "media_failed",
        /// Its draft file was written to again after it was taken (a draft written in
        /// steps): its text may be only the first part. Never sent.
        DraftIncomplete = "draft_incomplete",
        /// Its draft left the queue folder (moved or deleted) while it was being taken: its
        /// author may have withdrawn it. Never sent.
        DraftWithdrawn = "draft_withdrawn",
    }
}

impl AttemptOutcome {
    /// The try ended with the post on LinkedIn and its URN recorded.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            AttemptOutcome::Published
                | AttemptOutcome::PublishedAfterDoubt
                | AttemptOutcome::ResolvedFound
                | AttemptOutcome::ResolvedDuplicate
                | AttemptOutcome::Resolved
        )
    }

    /// Not a failure: a publish, or an edit or delete that LinkedIn carried out.
    pub fn is_failure(self) -> bool {
        !(self.is_success() || matches!(self, AttemptOutcome::Edited | AttemptOutcome::Deleted))
    }
}

impl DeadReason {
    /// A letter a plain `lipost retry --all` must not resend: the post may already be live.
    pub fn may_be_live(self) -> bool {
        matches!(self, DeadReason::InDoubt | DeadReason::Duplicate)
    }
}

spelled! {
    /// Why a due post waits instead of going out (`posts.hold_reason`, until `hold_until`).
    ///
    /// Two kinds of hold. Those an event ends ([`HoldReason::is_lifted`]: `needs_reauth`,
    /// `api_version_retired`, `media_processing`) count no try and leave no dead letter; `hold_until` is the end
    /// of the lateness budget, and the post goes out once an event lifts the hold, unless it
    /// is too late by then. The others end by time: `hold_until` is when the post goes out
    /// (or is tried again), and `next_attempt_at` is the same instant.
    HoldReason {
        /// Its account has no usable token: a person must run `lipost auth login`.
        NeedsReauth = "needs_reauth",
        /// LinkedIn no longer serves the configured `linkedin.version` (426).
        ApiVersionRetired = "api_version_retired",
        /// The account published `daily_cap` posts since 00:00 UTC; goes out after the next.
        DailyCap = "daily_cap",
        /// The account's `min_spacing` since its last post has not passed yet.
        MinSpacing = "min_spacing",
        /// LinkedIn answered 429 to this post or to another of the same member (its limits
        /// are per member); tried again at `hold_until` (its daily quota resets at 00:00 UTC).
        RateLimited = "rate_limited",
        /// The last try failed in a way worth repeating; tried again at `hold_until`.
        Backoff = "backoff",
        /// The last try may have reached LinkedIn: resent at `hold_until`, inside LinkedIn's
        /// duplicate window, so LinkedIn's answer tells whether it landed.
        InDoubtResend = "in_doubt_resend",
        /// Never recorded: a post waiting for its posting slot is not due yet. Declared so
        /// readers (show, agenda) have one spelling for "waiting for its slot".
        Slot = "slot",
        /// Its media is not `AVAILABLE` yet (uploading, processing, or a member asset's
        /// `media.member_grace`): lifted when the uploader says an asset changed.
        MediaProcessing = "media_processing",
    }
}

impl HoldReason {
    /// Ended by an event (a login, a served API version, an asset that became available or
    /// failed), not by time: `hold_until` is the end of the lateness budget.
    pub fn is_lifted(self) -> bool {
        matches!(
            self,
            HoldReason::NeedsReauth | HoldReason::ApiVersionRetired | HoldReason::MediaProcessing
        )
    }

    /// Set by the account's pacing (`daily_cap`, `min_spacing`), which the config says and a
    /// reload may change: see `Store::replan_pacing`.
    pub fn is_pacing(self) -> bool {
        matches!(self, HoldReason::DailyCap | HoldReason::MinSpacing)
    }

    /// What it means, in a few words, for `show`, the log and the `post_held` event.
    pub fn meaning(self) -> &'static str {
        match self {
            HoldReason::NeedsReauth => "its account needs `lipost auth login`",
            HoldReason::ApiVersionRetired => {
                "LinkedIn retired the configured linkedin.version: set a recent one, then reload"
            }
            HoldReason::DailyCap => "its account reached its daily_cap",
            HoldReason::MinSpacing => "its account's min_spacing since its last post",
            HoldReason::RateLimited => "LinkedIn rate-limited its member's last try (429)",
            HoldReason::Backoff => "the last try failed; waiting before the next",
            HoldReason::InDoubtResend => {
                "the last try may have reached LinkedIn; resending inside the duplicate window"
            }
            HoldReason::Slot => "waiting for its posting slot",
            HoldReason::MediaProcessing => "LinkedIn is processing its media",
        }
    }
}
