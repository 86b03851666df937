//! Drafts written in steps. A script that writes a draft with `>` and then `>>` (or line by
//! line) closes the file several times, and each close looks like a finished draft. Two
//! states show that the writer is not done: a file that ends inside its front matter, and
//! front matter with no text yet. Those wait `watcher.incomplete_wait` for the rest
//! ([`unfinished`]). Once a draft with text has been taken and moved out, the next `>>`
//! makes a new file under the same name holding only the rest, without front matter: taken
//! as a draft, it would go out at once, and the post taken before would go out with half its
//! text. So a file without front matter that follows one with front matter under the same
//! name is refused, and the post taken from that name is stopped ([`Recent::continues`];
//! the store buries it as `draft_incomplete`) until a person drops the whole draft again. A
//! text without front matter after another is a plain re-drop. This module only remembers
//! names; it never touches the store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::draft::DraftError;

/// Whether a file holds nothing but white space: nothing written yet, and never a rest.
pub fn blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// Whether a draft refused with `e` may just be one its writer has not finished (a blank
/// file is refused for other reasons first, such as having no account).
pub fn unfinished(bytes: &[u8], e: &DraftError) -> bool {
    blank(bytes)
        || matches!(
            e,
            DraftError::Empty | DraftError::UnclosedFrontMatter { .. }
        )
}

/// The names of drafts with front matter, written in place and taken or refused lately,
/// with the post each became, if one may still be stopped.
#[derive(Default)]
pub struct Recent {
    taken: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

/// A file that looks like the rest of a draft already taken.
pub struct Continuation {
    /// The post scheduled from the same name; `None` if that draft was refused or was an
    /// edit of a published post.
    pub post_id: Option<String>,
    pub ago: Duration,
}

impl Recent {
    /// `name`, a draft with front matter written in place (not renamed in), was taken as
    /// post `id` (or refused, or an edit: `None`).
    pub fn remember(&self, name: String, id: Option<String>, window: Duration) {
        let now = Instant::now();
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        taken.retain(|_, (at, _)| now.duration_since(*at) < window);
        taken.insert(name, (now, id));
    }

    /// Whether a file without front matter, written in place under `name`, is the rest of
    /// the draft taken from that name less than `window` ago. A writer going on line by line
    /// makes one such file after another: each is the rest, so the name stays remembered,
    /// from the latest one on.
    pub fn continues(&self, name: &str, window: Duration) -> Option<Continuation> {
        let now = Instant::now();
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let (at, post_id) = taken.get_mut(name)?;
        let ago = now.duration_since(*at);
        if ago >= window {
            taken.remove(name);
            return None;
        }
        *at = now;
        Some(Continuation {
            post_id: post_id.clone(),
            ago,
        })
    }
}

impl Continuation {
    /// The stopped post's dead letter.
    pub fn letter(&self, name: &str, id: &str) -> String {
        format!(
            "its draft file {name} was written to again {ago:.1} s after it was taken (a draft written in steps, `>` then `>>`): its text may be only the first part, so it was not sent. Drop the whole draft again, with its front matter (it is scheduled again), or `lipost retry {id}` to send the text as it was taken, at its time",
            ago = self.ago.as_secs_f64(),
        )
    }

    /// Why the file is refused, once the store said whether the earlier post was stopped.
    pub fn reason(&self, name: &str, stopped: bool) -> String {
        let earlier = match &self.post_id {
            Some(id) if stopped => {
                format!("post {id} was stopped and not sent (dead as `draft_incomplete`)")
            }
            Some(id) => format!(
                "post {id} was no longer scheduled, so it could not be stopped (it may have gone out with the first part: see `lipost show {id}`)"
            ),
            None => "that draft was refused, or was an edit of a published post, so there was no scheduled post to stop".to_string(),
        };
        format!(
            "this file has no front matter and was written under the name {name} {ago:.1} s after the draft of that name, which had front matter: it looks like the rest of that draft, written in a further step (`>` then `>>`). {earlier}. Write the whole draft in one go (or under a temporary name, then rename it in) and drop it again",
            ago = self.ago.as_secs_f64(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_continues_while_steps_keep_coming_within_the_window() {
        let r = Recent::default();
        r.remember("a.md".into(), Some("a".into()), Duration::from_secs(60));
        assert!(r.continues("b.md", Duration::from_secs(60)).is_none());
        let c = r.continues("a.md", Duration::from_secs(60)).unwrap();
        assert_eq!(c.post_id.as_deref(), Some("a"));
        // A third step is the rest too.
        assert!(r.continues("a.md", Duration::from_secs(60)).is_some());
        std::thread::sleep(Duration::from_millis(20));
        assert!(r.continues("a.md", Duration::from_millis(10)).is_none());
    }

    #[test]
    fn only_a_file_that_may_still_grow_is_unfinished() {
        assert!(unfinished(b"+++\n+++\n", &DraftError::Empty));
        assert!(unfinished(
            b"+++\n",
            &DraftError::UnclosedFrontMatter { line: 1 }
        ));
        assert!(unfinished(b"\n", &DraftError::NoAccount));
        assert!(!unfinished(b"x", &DraftError::NoAccount));
    }
}
