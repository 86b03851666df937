//! What a post carries besides its text: the attachments and settings a bundle's front matter
//! named, fixed at intake. Plain data, stored as JSON in `posts.content`; the media bytes
//! themselves live in the content-addressed media store, named by their SHA-256.
//!
//! Owns the mapping from this to LinkedIn's `content` field once every asset has a URN
//! ([`Content::to_wire`]). Must not read files or talk to the network.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::linkedin::wire;

/// What kind of asset LinkedIn is asked to hold: each has its own upload endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Document,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Document => "document",
            MediaKind::Video => "video",
        }
    }

    pub fn parse(s: &str) -> Option<MediaKind> {
        [MediaKind::Image, MediaKind::Document, MediaKind::Video]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One file a bundle named, as copied into the media store at intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// Lowercase hex SHA-256 of the bytes: the file's name in the media store, and with the
    /// owner the key of its `media` row.
    pub sha256: String,
    pub kind: MediaKind,
    pub bytes: u64,
    /// The file's name inside the bundle, for `lipost show` and error messages.
    pub file: String,
    /// Alt text (images only), as the author wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
}

/// How long a poll stays open: the only four LinkedIn offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PollDuration {
    #[serde(rename = "1d")]
    OneDay,
    #[serde(rename = "3d")]
    ThreeDays,
    #[serde(rename = "7d")]
    SevenDays,
    #[serde(rename = "14d")]
    FourteenDays,
}

impl PollDuration {
    /// As a draft writes it: `1d`, `3d`, `7d`, `14d`.
    pub fn parse(s: &str) -> Option<PollDuration> {
        match s.trim() {
            "1d" => Some(PollDuration::OneDay),
            "3d" => Some(PollDuration::ThreeDays),
            "7d" => Some(PollDuration::SevenDays),
            "14d" => Some(PollDuration::FourteenDays),
            _ => None,
        }
    }

    /// As LinkedIn spells it in `settings.duration`.
    pub fn wire(self) -> &'static str {
        match self {
            PollDuration::OneDay => "ONE_DAY",
            PollDuration::ThreeDays => "THREE_DAYS",
            PollDuration::SevenDays => "SEVEN_DAYS",
            PollDuration::FourteenDays => "FOURTEEN_DAYS",
        }
    }
}

/// One content kind per post (LinkedIn allows no mix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// One image (`content.media`) or 2 to 20 (`content.multiImage`), in the order given.
    Images { images: Vec<Asset> },
    /// A PDF, PPT(X) or DOC(X): LinkedIn's organic "carousel". `title` is required.
    Document { asset: Asset, title: String },
    Video {
        asset: Asset,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// A link card. The API does not scrape the link: what the card shows comes from here.
    Article {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thumbnail: Option<Asset>,
    },
    Poll {
        question: String,
        options: Vec<String>,
        duration: PollDuration,
    },
}

impl Content {
    /// The draft key that names this kind (`images`, `document`, …), for messages.
    pub fn key(&self) -> &'static str {
        match self {
            Content::Images { .. } => "images",
            Content::Document { .. } => "document",
            Content::Video { .. } => "video",
            Content::Article { .. } => "article",
            Content::Poll { .. } => "poll",
        }
    }

    /// Every asset that must be `AVAILABLE` before the post may be created, in order.
    pub fn assets(&self) -> Vec<&Asset> {
        match self {
            Content::Images { images } => images.iter().collect(),
            Content::Document { asset, .. } | Content::Video { asset, .. } => vec![asset],
            Content::Article { thumbnail, .. } => thumbnail.iter().collect(),
            Content::Poll { .. } => Vec::new(),
        }
    }

    /// LinkedIn's `content` field, given each asset's URN by SHA-256. `None` names the first
    /// asset without one: the post must not be created yet.
    pub fn to_wire(&self, urns: &HashMap<String, String>) -> Result<wire::PostContent, String> {
        let urn = |a: &Asset| {
            urns.get(&a.sha256)
                .cloned()
                .ok_or_else(|| format!("{} has no URN yet", a.file))
        };
        Ok(match self {
            Content::Images { images } if images.len() == 1 => {
                wire::PostContent::Media(wire::MediaContent {
                    id: urn(&images[0])?,
                    alt_text: images[0].alt.clone(),
                    title: None,
                })
            }
            Content::Images { images } => wire::PostContent::MultiImage(wire::MultiImage {
                images: images
                    .iter()
                    .map(|a| {
                        Ok(wire::ImageRef {
                            id: urn(a)?,
                            alt_text: a.alt.clone(),
                        })
                    })
                    .collect::<Result<_, String>>()?,
            }),
            Content::Document { asset, title } => wire::PostContent::Media(wire::MediaContent {
                id: urn(asset)?,
                alt_text: None,
                title: Some(title.clone()),
            }),
            Content::Video { asset, title } => wire::PostContent::Media(wire::MediaContent {
                id: urn(asset)?,
                alt_text: None,
                title: title.clone(),
            }),
            Content::Article {
                url,
                title,
                description,
                thumbnail,
            } => wire::PostContent::Article(wire::ArticleContent {
                source: url.clone(),
                title: title.clone(),
                description: description.clone(),
                thumbnail: thumbnail.as_ref().map(urn).transpose()?,
            }),
            Content::Poll {
                question,
                options,
                duration,
            } => wire::PostContent::Poll(wire::PollContent {
                question: question.clone(),
                options: options
                    .iter()
                    .map(|t| wire::PollOption { text: t.clone() })
                    .collect(),
                settings: wire::PollSettings {
                    duration: duration.wire().to_string(),
                },
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(n: u8, alt: Option<&str>) -> Asset {
        Asset {
            sha256: format!("{n:064x}"),
            kind: MediaKind::Image,
            bytes: 10,
            file: format!("{n}.png"),
            alt: alt.map(str::to_string),
        }
    }

    #[test]
    fn one_image_is_media_and_several_are_a_multi_image_in_order() {
        let urns: HashMap<String, String> = (1..=3)
            .map(|n| (format!("{n:064x}"), format!("urn:li:image:{n}")))
            .collect();
        let one = Content::Images {
            images: vec![image(1, Some("a cat"))],
        };
        assert_eq!(
            serde_json::to_value(one.to_wire(&urns).unwrap()).unwrap(),
            serde_json::json!({"media": {"id": "urn:li:image:1", "altText": "a cat"}})
        );
        let three = Content::Images {
            images: vec![image(3, None), image(1, Some("x")), image(2, None)],
        };
        assert_eq!(
            serde_json::to_value(three.to_wire(&urns).unwrap()).unwrap(),
            serde_json::json!({"multiImage": {"images": [
                {"id": "urn:li:image:3"}, {"id": "urn:li:image:1", "altText": "x"}, {"id": "urn:li:image:2"}
            ]}})
        );
        let missing = Content::Images {
            images: vec![image(9, None)],
        };
        assert!(missing.to_wire(&urns).is_err());
    }

    #[test]
    fn a_poll_is_written_as_linkedin_spells_it_and_stored_as_the_draft_did() {
        let poll = Content::Poll {
            question: "Tabs?".into(),
            options: vec!["yes".into(), "no".into()],
            duration: PollDuration::parse("3d").unwrap(),
        };
        assert_eq!(
            serde_json::to_value(poll.to_wire(&HashMap::new()).unwrap()).unwrap(),
            serde_json::json!({"poll": {"question": "Tabs?", "options": [{"text": "yes"}, {"text": "no"}], "settings": {"duration": "THREE_DAYS"}}})
        );
        let stored = serde_json::to_string(&poll).unwrap();
        assert!(stored.contains("\"3d\""), "{stored}");
        assert_eq!(serde_json::from_str::<Content>(&stored).unwrap(), poll);
    }
}
