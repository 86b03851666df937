//! `[media]`: limits on a bundle's attachments and when they are uploaded. Read here, used by
//! intake (the caps) and the uploader (the timing).

use std::time::Duration;

use serde::Deserialize;

use super::{at_most, byte_size, duration, DAY, HOUR};

/// LinkedIn's own ceilings: a cap may be set lower, never higher.
pub const DOCUMENT_LIMIT: u64 = 100_000_000;
pub const VIDEO_LIMIT: u64 = 500_000_000;
/// Undocumented for images; third parties report 5 to 8 MB. A generous bound on the key.
pub const IMAGE_LIMIT: u64 = 36 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMedia {
    #[serde(deserialize_with = "duration")]
    upload_ahead: Duration,
    #[serde(deserialize_with = "duration")]
    member_grace: Duration,
    #[serde(deserialize_with = "duration")]
    poll_interval: Duration,
    #[serde(deserialize_with = "byte_size")]
    max_image_bytes: u64,
    #[serde(deserialize_with = "byte_size")]
    max_document_bytes: u64,
    #[serde(deserialize_with = "byte_size")]
    max_video_bytes: u64,
}

impl Default for RawMedia {
    fn default() -> Self {
        RawMedia {
            upload_ahead: Duration::from_secs(30 * 60),
            member_grace: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            max_image_bytes: 8 * 1024 * 1024,
            max_document_bytes: DOCUMENT_LIMIT,
            max_video_bytes: VIDEO_LIMIT,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Media {
    /// How long before its post is due an asset is uploaded (at once when due sooner).
    pub upload_ahead: Duration,
    /// How long after uploading a member-owned image or document the post waits, since a
    /// member token may not read its status.
    pub member_grace: Duration,
    /// How often an asset's status is asked while it is processing.
    pub poll_interval: Duration,
    pub max_image_bytes: u64,
    pub max_document_bytes: u64,
    pub max_video_bytes: u64,
}

pub(super) fn validate(raw: RawMedia) -> Result<Media, String> {
    at_most(
        "media.upload_ahead",
        raw.upload_ahead,
        7 * DAY,
        "LinkedIn's upload URLs and unposted assets are not kept that long",
    )?;
    at_most(
        "media.member_grace",
        raw.member_grace,
        HOUR,
        "every member image or document post would wait that long after its upload",
    )?;
    at_most(
        "media.poll_interval",
        raw.poll_interval,
        HOUR,
        "a post waits for its media at least this long",
    )?;
    if raw.poll_interval.is_zero() {
        return Err("media.poll_interval must be longer than 0s".into());
    }
    for (key, value, limit, what) in [
        (
            "media.max_image_bytes",
            raw.max_image_bytes,
            IMAGE_LIMIT,
            "36MiB",
        ),
        (
            "media.max_document_bytes",
            raw.max_document_bytes,
            DOCUMENT_LIMIT,
            "100MB, LinkedIn's limit",
        ),
        (
            "media.max_video_bytes",
            raw.max_video_bytes,
            VIDEO_LIMIT,
            "500MB, LinkedIn's limit",
        ),
    ] {
        if value == 0 || value > limit {
            return Err(format!("{key} = {value} bytes: use 1 byte to {what}"));
        }
    }
    Ok(Media {
        upload_ahead: raw.upload_ahead,
        member_grace: raw.member_grace,
        poll_interval: raw.poll_interval,
        max_image_bytes: raw.max_image_bytes,
        max_document_bytes: raw.max_document_bytes,
        max_video_bytes: raw.max_video_bytes,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, TEST_CONFIG};
    use std::path::Path;

    fn parse(media: &str) -> Result<Config, String> {
        Config::parse(
            &format!("{TEST_CONFIG}\n[media]\n{media}\n"),
            Path::new("/x/c.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_caps_within_linkedins_limits() {
        let m = parse("").unwrap().media;
        assert_eq!(m.upload_ahead.as_secs(), 1800);
        assert_eq!(m.max_video_bytes, super::VIDEO_LIMIT);
        let m = parse("max_image_bytes = \"5MiB\"\nmember_grace = \"30s\"")
            .unwrap()
            .media;
        assert_eq!((m.max_image_bytes, m.member_grace.as_secs()), (5 << 20, 30));
        for bad in [
            "max_video_bytes = \"1GiB\"",
            "max_document_bytes = 0",
            "upload_ahead = \"30d\"",
            "poll_interval = \"0s\"",
            "wat = 1",
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
