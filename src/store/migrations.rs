//! Numbered schema migrations. Append only: a released migration is never edited.
//! `PRAGMA user_version` records how many have run.

pub const MIGRATIONS: &[&str] = &[
    // 1: posts, attempts, dead letters.
    r#"
CREATE TABLE posts (
    id               TEXT PRIMARY KEY,
    account          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('scheduled','publishing','published','dead','cancelled')),
    due_at           TEXT NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    publish_at       TEXT,
    post_urn         TEXT,
    commentary       TEXT NOT NULL,
    text             TEXT NOT NULL,
    visibility       TEXT NOT NULL,
    source_file      TEXT,
    attempts_used    INTEGER NOT NULL DEFAULT 0,
    rate_limited     INTEGER NOT NULL DEFAULT 0,
    in_doubt_since   TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    published_at     TEXT
);
CREATE INDEX posts_state_next ON posts (state, next_attempt_at);
CREATE INDEX posts_account_published ON posts (account, published_at);

CREATE TABLE attempts (
    id                 INTEGER PRIMARY KEY,
    post_id            TEXT NOT NULL REFERENCES posts (id),
    started_at         TEXT NOT NULL,
    finished_at        TEXT,
    http_status        INTEGER,
    error_code         TEXT,
    service_error_code INTEGER,
    message            TEXT,
    outcome            TEXT,
    next_attempt_at    TEXT
);
CREATE INDEX attempts_post ON attempts (post_id, id);

CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY,
    post_id      TEXT NOT NULL REFERENCES posts (id),
    reason       TEXT NOT NULL,
    http_status  INTEGER,
    error_code   TEXT,
    message      TEXT,
    created_at   TEXT NOT NULL,
    requeued_at  TEXT
);
CREATE INDEX dead_letters_post ON dead_letters (post_id);
"#,
    // 2: OAuth tokens, one row per member account. The database file is mode 0600.
    r#"
CREATE TABLE tokens (
    account             TEXT PRIMARY KEY,
    member_urn          TEXT NOT NULL,
    access_token        TEXT NOT NULL,
    access_expires_at   TEXT NOT NULL,
    refresh_token       TEXT,
    refresh_expires_at  TEXT,
    scopes              TEXT NOT NULL,
    source              TEXT NOT NULL CHECK (source IN ('login', 'import', 'sandbox')),
    status              TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'needs_reauth')),
    status_reason       TEXT,
    updated_at          TEXT NOT NULL
);
"#,
    // 3: posting slots. A slot is reserved by at most one live post of an account.
    r#"
ALTER TABLE posts ADD COLUMN slot_at TEXT;
CREATE UNIQUE INDEX posts_slot ON posts (account, slot_at)
    WHERE slot_at IS NOT NULL AND state IN ('scheduled', 'publishing', 'published');
"#,
    // 4: what the database was made for (mode, live API base), and why a due post is held.
    // `hold_until` is when the scheduler looks at a held post by itself: the end of its
    // lateness budget, when it goes dead as `too_late` unless the hold is lifted first.
    r#"
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
ALTER TABLE posts ADD COLUMN hold_reason TEXT;
ALTER TABLE posts ADD COLUMN hold_until TEXT;
"#,
    // 5: which post holds a URN: an in-doubt post is matched only to a URN no other post holds.
    r#"
CREATE INDEX posts_urn ON posts (post_urn) WHERE post_urn IS NOT NULL;
"#,
    // 6: the notification outbox: one row per event and sink, written in the transaction of
    // the change it reports. `id` is the event's, the same on every sink.
    r#"
CREATE TABLE notifications (
    id               TEXT NOT NULL,
    kind             TEXT NOT NULL,
    sink             TEXT NOT NULL,
    post_id          TEXT,
    account          TEXT,
    payload          TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    sent_at          TEXT,
    last_error       TEXT,
    PRIMARY KEY (id, sink)
);
CREATE INDEX notifications_pending ON notifications (next_attempt_at) WHERE status = 'pending';
"#,
    // 7: since when a post waits for its current `hold_reason` (kept while the reason stays
    // the same, also across a lift), and when it is reported as held too long (`post_held`;
    // NULL once reported, or when that event is not routed).
    r#"
ALTER TABLE posts ADD COLUMN hold_since TEXT;
ALTER TABLE posts ADD COLUMN hold_report_at TEXT;
CREATE INDEX posts_hold_report ON posts (hold_report_at) WHERE hold_report_at IS NOT NULL;
"#,
    // 8: media posts. `content` is the JSON of `content::Content` (NULL for a text post),
    // `first_comment` the comment posted once the post is. `media` holds one row per asset
    // and owner (the author's URN), so the same file for the same owner is uploaded once;
    // `status` is `pending` (nothing sent), `uploading`, `processing` (uploaded, not yet
    // known to be AVAILABLE), `available` or `failed`. `media_attempts` records each step
    // tried (initialize, upload, finalize, status). `comments` holds a post's first comment
    // with its own retries: `sending` is claimed before the request, so one found after a
    // crash may be on LinkedIn and is never sent again (it goes `dead`, for a person).
    r#"
ALTER TABLE posts ADD COLUMN content TEXT;
ALTER TABLE posts ADD COLUMN first_comment TEXT;
CREATE TABLE media (
    sha256           TEXT NOT NULL,
    owner            TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('image', 'document', 'video')),
    bytes            INTEGER NOT NULL,
    urn              TEXT,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'uploading', 'processing', 'available', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    uploaded_at      TEXT,
    available_at     TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (sha256, owner)
);
CREATE TABLE media_attempts (
    id           INTEGER PRIMARY KEY,
    sha256       TEXT NOT NULL,
    owner        TEXT NOT NULL,
    step         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    http_status  INTEGER,
    message      TEXT,
    outcome      TEXT
);
CREATE INDEX media_attempts_asset ON media_attempts (sha256, owner, id);
CREATE TABLE comments (
    post_id          TEXT PRIMARY KEY REFERENCES posts (id),
    text             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'waiting'
                     CHECK (status IN ('waiting', 'sending', 'posted', 'refused', 'dead')),
    comment_urn      TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
"#,
    // 9: `deleted` (`lipost delete`), and edits of published posts. SQLite cannot change a
    // CHECK, so `posts` is rebuilt per SQLite's documented 12-step procedure: `Store::migrate`
    // runs it with foreign keys off and checks them (`PRAGMA foreign_key_check`) before the
    // commit; every index of migrations 1 to 8 is made again as it was. `edits` holds the
    // text an `edit = true` draft asks for, at most one `pending` per post, sent by the
    // daemon (a PARTIAL_UPDATE, safe to repeat) until `done`, or `failed` with the reason.
    r#"
CREATE TABLE posts_new (
    id               TEXT PRIMARY KEY,
    account          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('scheduled','publishing','published','dead','cancelled','deleted')),
    due_at           TEXT NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    publish_at       TEXT,
    post_urn         TEXT,
    commentary       TEXT NOT NULL,
    text             TEXT NOT NULL,
    visibility       TEXT NOT NULL,
    source_file      TEXT,
    attempts_used    INTEGER NOT NULL DEFAULT 0,
    rate_limited     INTEGER NOT NULL DEFAULT 0,
    in_doubt_since   TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    published_at     TEXT,
    slot_at          TEXT,
    hold_reason      TEXT,
    hold_until       TEXT,
    hold_since       TEXT,
    hold_report_at   TEXT,
    content          TEXT,
    first_comment    TEXT
);
INSERT INTO posts_new (id, account, state, due_at, next_attempt_at, publish_at, post_urn, commentary,
    text, visibility, source_file, attempts_used, rate_limited, in_doubt_since, last_error, created_at,
    updated_at, published_at, slot_at, hold_reason, hold_until, hold_since, hold_report_at, content,
    first_comment)
SELECT id, account, state, due_at, next_attempt_at, publish_at, post_urn, commentary,
    text, visibility, source_file, attempts_used, rate_limited, in_doubt_since, last_error, created_at,
    updated_at, published_at, slot_at, hold_reason, hold_until, hold_since, hold_report_at, content,
    first_comment
FROM posts;
DROP TABLE posts;
ALTER TABLE posts_new RENAME TO posts;
CREATE INDEX posts_state_next ON posts (state, next_attempt_at);
CREATE INDEX posts_account_published ON posts (account, published_at);
CREATE UNIQUE INDEX posts_slot ON posts (account, slot_at)
    WHERE slot_at IS NOT NULL AND state IN ('scheduled', 'publishing', 'published');
CREATE INDEX posts_urn ON posts (post_urn) WHERE post_urn IS NOT NULL;
CREATE INDEX posts_hold_report ON posts (hold_report_at) WHERE hold_report_at IS NOT NULL;

CREATE TABLE edits (
    id               INTEGER PRIMARY KEY,
    post_id          TEXT NOT NULL REFERENCES posts (id),
    text             TEXT NOT NULL,
    commentary       TEXT NOT NULL,
    source_file      TEXT,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE UNIQUE INDEX edits_pending ON edits (post_id) WHERE status = 'pending';
CREATE INDEX edits_next ON edits (next_attempt_at) WHERE status = 'pending';
CREATE INDEX comments_waiting ON comments (next_attempt_at) WHERE status = 'waiting';
"#,
    // Whether the post's draft had front matter (1 or 0; NULL for posts taken before): a
    // file without any may not replace one that had it (its time, account, visibility).
    r#"
ALTER TABLE posts ADD COLUMN front_matter INTEGER;
"#,
    // Which file the post was last taken from (device, inode, size, times): that file found
    // again, never moved out, is not a new drop (it must not revive a cancelled post).
    r#"
ALTER TABLE posts ADD COLUMN source_stamp TEXT;
"#,
    // Posts waiting after a 429 (their own tries were refused): the scheduler holds the
    // other posts of the same member until then (`Store::throttled`), read on every look.
    r#"
CREATE INDEX posts_rate_limited ON posts (account, next_attempt_at)
    WHERE state = 'scheduled' AND rate_limited > 0 AND hold_reason = 'rate_limited';
"#,
    // Posts the scheduler may claim ahead of their due time (nothing holds them, no try in
    // doubt): it wakes `scheduler::AHEAD` before the earliest (`Store::next_plain_after`),
    // and reads them in its looks (`Store::due_ahead`), without walking the held ones.
    r#"
CREATE INDEX posts_plain_next ON posts (next_attempt_at)
    WHERE state = 'scheduled' AND hold_reason IS NULL AND in_doubt_since IS NULL;
"#,
];
