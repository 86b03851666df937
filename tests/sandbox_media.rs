//! The sandbox's media, comment, edit and delete endpoints, driven over HTTP against a real
//! `lipost sandbox` child process: every happy path, and the ways LinkedIn refuses.

mod common;

use std::time::{Duration, Instant};

use common::{current_version, Sandbox};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ORG: &str = "urn:li:organization:2414183";
const MIB4: u64 = 4 * 1024 * 1024;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn enc(urn: &str) -> String {
    url::form_urlencoded::byte_serialize(urn.as_bytes()).collect()
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes that differ per seed and along the way (no period), so each upload and each video
/// part is its own content.
fn bytes(seed: u8, len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A member's access to the sandbox: their token and URN.
struct Member {
    url: String,
    token: String,
    urn: String,
}

fn member(sb: &Sandbox, name: &str, scope: &str, orgs: &[&str]) -> Member {
    let r: Value = client()
        .post(format!("{}/_sandbox/token", sb.url))
        .json(&json!({"member": name, "scope": scope, "organizations": orgs}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = r["access_token"].as_str().unwrap().to_string();
    let info: Value = client()
        .get(format!("{}/v2/userinfo", sb.url))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    Member {
        url: sb.url.clone(),
        token,
        urn: format!("urn:li:person:{}", info["sub"].as_str().unwrap()),
    }
}

fn me(sb: &Sandbox) -> Member {
    member(
        sb,
        "me",
        "openid profile w_member_social w_organization_social r_organization_social",
        &[ORG],
    )
}

impl Member {
    fn call(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        client()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("LinkedIn-Version", current_version())
            .header("X-Restli-Protocol-Version", "2.0.0")
    }

    fn post(&self, path: &str, body: Value) -> Response {
        self.call(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .unwrap()
    }

    fn get(&self, path: &str) -> Response {
        self.call(reqwest::Method::GET, path).send().unwrap()
    }

    /// `initializeUpload` for `kind` (`images`, `documents`, `videos`).
    fn init(&self, kind: &str, owner: &str, size: Option<u64>) -> Response {
        let mut req = json!({"owner": owner});
        if let Some(n) = size {
            req["fileSizeBytes"] = json!(n);
            req["uploadCaptions"] = json!(false);
            req["uploadThumbnail"] = json!(false);
        }
        self.post(
            &format!("/rest/{kind}?action=initializeUpload"),
            json!({ "initializeUploadRequest": req }),
        )
    }

    /// An image or document owned by `owner`, uploaded: its URN.
    fn upload(&self, kind: &str, owner: &str, data: &[u8]) -> String {
        let r = self.init(kind, owner, None);
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        let field = kind.trim_end_matches('s');
        let put = put_whole(&v["value"]["uploadUrl"], Some(&self.token), data);
        assert_eq!(put.status(), 201);
        v["value"][field].as_str().unwrap().to_string()
    }

    fn create(&self, author: &str, commentary: &str, content: Option<Value>) -> Response {
        let mut body = json!({
            "author": author,
            "commentary": commentary,
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false
        });
        if let Some(c) = content {
            body["content"] = c;
        }
        self.post("/rest/posts", body)
    }

    fn status(&self, kind: &str, urn: &str) -> Response {
        self.get(&format!("/rest/{kind}/{}", enc(urn)))
    }
}

fn put_whole(url: &Value, token: Option<&str>, data: &[u8]) -> Response {
    let mut req = client().put(url.as_str().unwrap()).body(data.to_vec());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap()
}

fn put_part(url: &Value, data: &[u8]) -> Response {
    client()
        .put(url.as_str().unwrap())
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .unwrap()
}

fn code(r: Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()
            .get("x-restli-error-response")
            .map(|v| v.to_str().unwrap()),
        Some("true"),
        "an error answer"
    );
    let v: Value = r.json().unwrap();
    (
        status,
        v["code"].as_str().unwrap_or_default().to_string(),
        v["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn created_urn(r: Response) -> String {
    assert_eq!(r.status(), 201, "{:?}", r.text());
    r.headers()["x-restli-id"].to_str().unwrap().to_string()
}

fn post_of(sb: &Sandbox, urn: &str) -> Value {
    sb.posts()
        .into_iter()
        .find(|p| p["urn"] == urn)
        .unwrap_or_else(|| panic!("{urn} not on the sandbox"))
}

fn media_bytes(sb: &Sandbox, urn: &str) -> Vec<u8> {
    let r = client()
        .get(format!("{}/_sandbox/media/{}", sb.url, enc(urn)))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().unwrap().to_vec()
}

fn wait_status(m: &Member, kind: &str, urn: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = m.status(kind, urn).json().unwrap();
        if v["status"] == want {
            return v;
        }
        assert!(Instant::now() < deadline, "{urn} never {want}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_image_post_names_only_an_uploaded_image_of_its_author() {
    let sb = Sandbox::start();
    sb.configure(json!({"media_processing_ms": 0}));
    let me = me(&sb);
    let you = member(&sb, "you", "openid profile w_member_social", &[]);

    // The owner must be the token's member or a page they hold a role on.
    assert_eq!(code(me.init("images", &you.urn, None)).1, "ACCESS_DENIED");
    assert_eq!(
        code(me.init("images", "urn:li:organization:999", None)).1,
        "ACCESS_DENIED"
    );

    let init: Value = me.init("images", &me.urn, None).json().unwrap();
    let value = &init["value"];
    let urn = value["image"].as_str().unwrap().to_string();
    assert!(urn.starts_with("urn:li:image:"), "{init}");
    assert!(
        value["uploadUrl"].as_str().unwrap().starts_with(&sb.url),
        "{init}"
    );
    let expires = value["uploadUrlExpiresAt"].as_i64().unwrap();
    assert!(expires > chrono::Utc::now().timestamp_millis() + 30 * 60 * 1000);

    let alt = json!({"media": {"id": urn, "altText": "A red square"}});
    let (status, c, message) = code(me.create(&me.urn, "Look", Some(alt.clone())));
    assert_eq!(
        (status, c.as_str(), message.as_str()),
        (
            400,
            "MEDIA_ASSET_WAITING_UPLOAD",
            "Media asset is waiting upload"
        )
    );

    let data = bytes(1, 300_000);
    assert_eq!(put_whole(&value["uploadUrl"], None, &data).status(), 401);
    assert_eq!(
        put_whole(&value["uploadUrl"], Some(&you.token), &data).status(),
        401
    );
    let put = put_whole(&value["uploadUrl"], Some(&me.token), &data);
    assert_eq!(put.status(), 201);
    assert!(put.bytes().unwrap().is_empty());

    // A member token may not read a member-owned image's status, not even its own.
    let (status, c, message) = code(me.status("images", &urn));
    assert_eq!((status, c.as_str()), (403, "ACCESS_DENIED"));
    assert!(
        message.starts_with("Accessing this image resource is forbidden"),
        "{message}"
    );

    // Someone else's image cannot be named.
    let theirs = you.upload("images", &you.urn, &bytes(2, 1000));
    let other = json!({"media": {"id": theirs}});
    assert_eq!(
        code(me.create(&me.urn, "Theirs", Some(other))).1,
        "INVALID_IMAGE_ID"
    );
    let doc_as_image =
        json!({"multiImage": {"images": [{"id": urn}, {"id": "urn:li:document:x"}]}});
    assert_eq!(
        code(me.create(&me.urn, "Mixed", Some(doc_as_image))).1,
        "INVALID_IMAGE_ID"
    );

    let post = created_urn(me.create(&me.urn, "Look", Some(alt.clone())));
    let p = post_of(&sb, &post);
    assert_eq!(p["content_kind"], "image");
    assert_eq!(p["content"]["media"]["altText"], "A red square");
    assert_eq!(p["assets"][0]["urn"], urn.as_str());
    assert_eq!(p["assets"][0]["sha256"], sha(&data).as_str());
    assert_eq!(p["assets"][0]["bytes"], data.len());
    assert_eq!(p["assets"][0]["status_at_post"], "AVAILABLE");
    assert_eq!(p["visible"], true);
    assert_eq!(media_bytes(&sb, &urn), data);

    // The same request again is a duplicate, and so is the same text with another image
    // (the notes: the same commentary by the same author); another text is not.
    let (status, _, message) = code(me.create(&me.urn, "Look", Some(alt)));
    assert_eq!(status, 422);
    assert!(message.contains(&post), "{message}");
    let second = me.upload("images", &me.urn, &bytes(3, 1000));
    let (status, _, message) =
        code(me.create(&me.urn, "Look", Some(json!({"media": {"id": second}}))));
    assert_eq!(status, 422);
    assert!(message.contains(&post), "{message}");
    created_urn(me.create(
        &me.urn,
        "Look again",
        Some(json!({"media": {"id": second}})),
    ));

    // A gateway failing after LinkedIn stored a media post: the resend is a duplicate.
    let third = me.upload("images", &me.urn, &bytes(4, 1000));
    sb.faults(json!([{"path": "/rest/posts", "status": 502, "stored": true}]));
    let content = json!({"media": {"id": third}});
    assert_eq!(
        me.create(&me.urn, "Stored", Some(content.clone())).status(),
        502
    );
    assert_eq!(code(me.create(&me.urn, "Stored", Some(content))).0, 422);
    let stored: Vec<Value> = sb
        .posts()
        .into_iter()
        .filter(|p| p["commentary"] == "Stored")
        .collect();
    assert_eq!(stored.len(), 1);
}

#[test]
fn page_documents_and_images_move_from_waiting_to_available() {
    let sb = Sandbox::start();
    sb.configure(json!({"media_processing_ms": 200}));
    let me = me(&sb);

    let init: Value = me.init("documents", ORG, None).json().unwrap();
    let doc = init["value"]["document"].as_str().unwrap().to_string();
    assert!(doc.starts_with("urn:li:document:"), "{init}");
    assert!(init["value"]["uploadUrlExpiresAt"].is_i64());
    let status: Value = me.status("documents", &doc).json().unwrap();
    assert_eq!(status["status"], "WAITING_UPLOAD");
    assert_eq!(status["id"], doc.as_str());

    // A second PUT to the same URL replaces the bytes.
    let pdf = bytes(7, 250_000);
    for data in [&bytes(6, 90_000), &pdf] {
        assert_eq!(
            put_whole(&init["value"]["uploadUrl"], Some(&me.token), data).status(),
            201
        );
    }
    wait_status(&me, "documents", &doc, "AVAILABLE");

    // A document post needs a title.
    let untitled = json!({"media": {"id": doc}});
    let (status, _, message) = code(me.create(ORG, "Deck", Some(untitled)));
    assert_eq!(status, 422);
    assert!(message.contains("/content/media/title"), "{message}");
    let post = created_urn(me.create(
        ORG,
        "Deck",
        Some(json!({"media": {"id": doc, "title": "Q3 deck"}})),
    ));
    let p = post_of(&sb, &post);
    assert_eq!(p["content_kind"], "document");
    assert_eq!(p["content"]["media"]["title"], "Q3 deck");
    assert_eq!(p["assets"][0]["sha256"], sha(&pdf).as_str());
    assert_eq!(p["assets"][0]["status_at_post"], "AVAILABLE");
    assert_eq!(media_bytes(&sb, &doc), pdf);

    // While processing, a post naming the asset is accepted, as LinkedIn does, and the
    // status at that moment is recorded.
    sb.configure(json!({"media_processing_ms": 600_000}));
    let img = me.upload("images", ORG, &bytes(8, 5000));
    let status: Value = me.status("images", &img).json().unwrap();
    assert_eq!(status["status"], "PROCESSING");
    let early = created_urn(me.create(ORG, "Early", Some(json!({"media": {"id": img}}))));
    assert_eq!(
        post_of(&sb, &early)["assets"][0]["status_at_post"],
        "PROCESSING"
    );

    // A member holding no role on the page may not read its assets.
    let stranger = member(&sb, "stranger", "openid profile w_organization_social", &[]);
    assert_eq!(code(stranger.status("images", &img)).0, 403);
}

#[test]
fn a_video_goes_up_in_4_mib_parts_and_is_finalized_with_its_etags_in_order() {
    let sb = Sandbox::start();
    sb.configure(json!({"media_processing_ms": 100}));
    let me = me(&sb);
    let size = 2 * MIB4 + 1000;
    let data = bytes(9, size as usize);

    let over = code(me.init("videos", &me.urn, Some(500_000_001)));
    assert_eq!(over.0, 400);
    let init: Value = me.init("videos", &me.urn, Some(size)).json().unwrap();
    let v = &init["value"];
    let video = v["video"].as_str().unwrap().to_string();
    assert!(video.starts_with("urn:li:video:"), "{init}");
    assert!(v["uploadToken"].is_string());
    assert!(v["uploadUrlsExpireAt"].is_i64());
    let parts = v["uploadInstructions"].as_array().unwrap();
    let ranges: Vec<(u64, u64)> = parts
        .iter()
        .map(|p| {
            assert!(p["uploadUrl"].as_str().unwrap().starts_with(&sb.url));
            (
                p["firstByte"].as_u64().unwrap(),
                p["lastByte"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ranges,
        vec![
            (0, MIB4 - 1),
            (MIB4, 2 * MIB4 - 1),
            (2 * MIB4, 2 * MIB4 + 999)
        ]
    );
    let slice = |i: usize| &data[ranges[i].0 as usize..=ranges[i].1 as usize];

    // Parts go without the bearer token, as octet-stream, and exactly their range.
    let with_token = client()
        .put(parts[0]["uploadUrl"].as_str().unwrap())
        .bearer_auth(&me.token)
        .header("Content-Type", "application/octet-stream")
        .body(slice(0).to_vec())
        .send()
        .unwrap();
    assert_eq!(with_token.status(), 400);
    assert_eq!(put_part(&parts[2]["uploadUrl"], slice(1)).status(), 400);
    assert_eq!(
        put_part(&parts[2]["uploadUrl"], &slice(2)[1..]).status(),
        400
    );
    let json_part = client()
        .put(parts[2]["uploadUrl"].as_str().unwrap())
        .header("Content-Type", "application/json")
        .body(slice(2).to_vec())
        .send()
        .unwrap();
    assert_eq!(json_part.status(), 400);

    // A scripted fault on the upload URLs answers (after reading the part), not a broken pipe.
    sb.faults(json!([{"path": "/dms-uploads/*", "status": 503}]));
    assert_eq!(put_part(&parts[0]["uploadUrl"], slice(0)).status(), 503);

    // Out of order is fine; a part sent again replaces its bytes.
    let mut etags = vec![String::new(); 3];
    put_part(&parts[1]["uploadUrl"], &bytes(99, MIB4 as usize));
    for i in [2, 1, 0] {
        let r = put_part(&parts[i]["uploadUrl"], slice(i));
        assert_eq!(r.status(), 200);
        etags[i] = r.headers()["etag"].to_str().unwrap().to_string();
    }
    assert_eq!(
        wait_status(&me, "videos", &video, "WAITING_UPLOAD")["id"],
        video.as_str()
    );
    let named = json!({"media": {"id": video, "title": "Demo"}});
    assert_eq!(
        code(me.create(&me.urn, "Video", Some(named.clone()))).1,
        "MEDIA_ASSET_WAITING_UPLOAD"
    );

    let finalize = |ids: Vec<&String>| {
        me.post(
            "/rest/videos?action=finalizeUpload",
            json!({"finalizeUploadRequest": {"video": video, "uploadToken": v["uploadToken"], "uploadedPartIds": ids}}),
        )
    };
    assert_eq!(
        finalize(vec![&etags[1], &etags[0], &etags[2]]).status(),
        400
    );
    assert_eq!(finalize(vec![&etags[0], &etags[1]]).status(), 400);
    assert_eq!(finalize(etags.iter().collect()).status(), 200);
    assert_eq!(finalize(etags.iter().collect()).status(), 200);
    wait_status(&me, "videos", &video, "AVAILABLE");

    let post = created_urn(me.create(&me.urn, "Video", Some(named)));
    let p = post_of(&sb, &post);
    assert_eq!(p["content_kind"], "video");
    assert_eq!(p["content"]["media"]["title"], "Demo");
    assert_eq!(p["assets"][0]["sha256"], sha(&data).as_str());
    assert_eq!(p["assets"][0]["bytes"], size);
    assert_eq!(p["assets"][0]["status_at_post"], "AVAILABLE");
    assert_eq!(sha(&media_bytes(&sb, &video)), sha(&data));

    // Page videos need ADMINISTRATOR or DIRECT_SPONSORED_CONTENT_POSTER.
    client()
        .post(format!("{}/_sandbox/roles", sb.url))
        .json(&json!({"member": "me", "organization": ORG, "role": "CONTENT_ADMIN"}))
        .send()
        .unwrap();
    assert_eq!(
        code(me.init("videos", ORG, Some(100_000))).1,
        "ACCESS_DENIED"
    );
    assert_eq!(me.init("images", ORG, None).status(), 200);
}

#[test]
fn upload_urls_expire() {
    let sb = Sandbox::start();
    sb.configure(json!({"upload_url_ttl_ms": 0}));
    let me = me(&sb);
    let init: Value = me.init("images", &me.urn, None).json().unwrap();
    let (status, c, _) = code(put_whole(
        &init["value"]["uploadUrl"],
        Some(&me.token),
        b"late",
    ));
    assert_eq!((status, c.as_str()), (400, "EXPIRED_UPLOAD_URL"));
    let video: Value = me.init("videos", &me.urn, Some(1000)).json().unwrap();
    let part = &video["value"]["uploadInstructions"][0]["uploadUrl"];
    assert_eq!(
        code(put_part(part, &bytes(1, 1000))).1,
        "EXPIRED_UPLOAD_URL"
    );

    // A fresh initialization gets fresh URLs.
    sb.configure(json!({"upload_url_ttl_ms": 3_600_000}));
    let again: Value = me.init("images", &me.urn, None).json().unwrap();
    assert_eq!(
        put_whole(&again["value"]["uploadUrl"], Some(&me.token), b"soon").status(),
        201
    );
}

#[test]
fn a_chosen_asset_fails_processing_and_its_post_turns_invisible() {
    let sb = Sandbox::start();
    sb.configure(json!({"media_processing_ms": 600_000}));
    let me = me(&sb);
    let bad = bytes(11, 4000);
    sb.configure(json!({"media_fail": {"sha256": sha(&bad), "reason": "corrupt file"}}));
    let good_first = me.upload("images", ORG, &bytes(12, 4000));
    let failing = me.upload("images", ORG, &bad);
    let good_last = me.upload("images", ORG, &bytes(13, 4000));

    let images = json!({"multiImage": {"images": [
        {"id": good_first, "altText": "one"}, {"id": failing, "altText": "two"}, {"id": good_last}
    ]}});
    let post = created_urn(me.create(ORG, "Three", Some(images)));
    let p = post_of(&sb, &post);
    assert_eq!(p["content_kind"], "multi_image");
    assert_eq!(p["visible"], true);
    let order: Vec<&Value> = p["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["urn"])
        .collect();
    assert_eq!(
        order,
        [&json!(good_first), &json!(failing), &json!(good_last)]
    );
    assert!(p["assets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status_at_post"] == "PROCESSING"));
    assert_eq!(p["content"]["multiImage"]["images"][1]["altText"], "two");

    // Processing ends: exactly the chosen asset failed, and the post is kept but unseen.
    sb.configure(json!({"media_processing_ms": 0}));
    assert_eq!(
        me.status("images", &failing).json::<Value>().unwrap()["status"],
        "PROCESSING_FAILED"
    );
    for ok in [&good_first, &good_last] {
        assert_eq!(
            me.status("images", ok).json::<Value>().unwrap()["status"],
            "AVAILABLE"
        );
    }
    let p = post_of(&sb, &post);
    assert_eq!(p["visible"], false);
    assert_eq!(p["assets"][1]["status"], "PROCESSING_FAILED");
    assert_eq!(p["assets"][1]["processing_failure_reason"], "corrupt file");
    assert_eq!(p["assets"][1]["status_at_post"], "PROCESSING");
    let listed = common::get_json(&format!("{}/_sandbox/media", sb.url));
    let failed: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "PROCESSING_FAILED")
        .collect();
    assert_eq!(failed.len(), 1, "{listed}");
    assert_eq!(failed[0]["urn"], failing.as_str());
    assert_eq!(failed[0]["sha256"], sha(&bad).as_str());
    assert_eq!(listed.as_array().unwrap().len(), 3);
    let again = json!({"media": {"id": failing}});
    assert_eq!(
        code(me.create(ORG, "Again", Some(again))).1,
        "MEDIA_ASSET_PROCESSING_FAILED"
    );

    // A failed video says why.
    sb.configure(json!({"media_fail": {"kind": "video", "reason": "bad codec"}}));
    let init: Value = me.init("videos", &me.urn, Some(2000)).json().unwrap();
    let v = &init["value"];
    let etag = put_part(&v["uploadInstructions"][0]["uploadUrl"], &bytes(1, 2000)).headers()
        ["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let fin = me.post(
        "/rest/videos?action=finalizeUpload",
        json!({"finalizeUploadRequest": {"video": v["video"], "uploadToken": v["uploadToken"], "uploadedPartIds": [etag]}}),
    );
    assert_eq!(fin.status(), 200);
    let failed = wait_status(
        &me,
        "videos",
        v["video"].as_str().unwrap(),
        "PROCESSING_FAILED",
    );
    assert_eq!(failed["processingFailureReason"], "bad codec");
}

#[test]
fn polls_articles_and_multi_images_are_checked_as_linkedin_documents() {
    let sb = Sandbox::start();
    sb.configure(json!({"media_processing_ms": 0}));
    let me = me(&sb);
    let you = member(&sb, "you", "openid profile w_member_social", &[]);

    let poll = |options: Value, duration: &str| json!({"poll": {"question": "Tabs or spaces?", "options": options, "settings": {"duration": duration}}});
    let two = json!([{"text": "Tabs"}, {"text": "Spaces"}]);
    let post = created_urn(me.create(&me.urn, "Vote", Some(poll(two.clone(), "THREE_DAYS"))));
    let p = post_of(&sb, &post);
    assert_eq!(p["content_kind"], "poll");
    assert_eq!(p["content"]["poll"]["question"], "Tabs or spaces?");
    assert_eq!(p["content"]["poll"]["options"], two);
    assert_eq!(p["content"]["poll"]["settings"]["duration"], "THREE_DAYS");
    for bad in [
        poll(json!([{"text": "Only"}]), "ONE_DAY"),
        poll(
            json!([{"text": "a"}, {"text": "b"}, {"text": "c"}, {"text": "d"}, {"text": "e"}]),
            "ONE_DAY",
        ),
        poll(two.clone(), "TWO_DAYS"),
    ] {
        assert_eq!(code(me.create(&me.urn, "Bad poll", Some(bad))).0, 422);
    }

    let thumb = me.upload("images", &me.urn, &bytes(5, 2000));
    let article = json!({"article": {"source": "https://example.com/a", "title": "A", "description": "D", "thumbnail": thumb}});
    let post = created_urn(me.create(&me.urn, "Read", Some(article)));
    let p = post_of(&sb, &post);
    assert_eq!(p["content_kind"], "article");
    assert_eq!(p["content"]["article"]["description"], "D");
    assert_eq!(p["assets"][0]["urn"], thumb.as_str());
    let theirs = you.upload("images", &you.urn, &bytes(6, 2000));
    let foreign = json!({"article": {"source": "https://example.com/b", "thumbnail": theirs}});
    assert_eq!(
        code(me.create(&me.urn, "B", Some(foreign))).1,
        "INVALID_IMAGE_ID"
    );
    let sourceless = json!({"article": {"source": "", "title": "A"}});
    assert_eq!(code(me.create(&me.urn, "C", Some(sourceless))).0, 422);

    let twenty_one: Vec<Value> = (0..21)
        .map(|i| json!({"id": format!("urn:li:image:{i}")}))
        .collect();
    let one = json!({"multiImage": {"images": [{"id": thumb}]}});
    let many = json!({"multiImage": {"images": twenty_one}});
    assert_eq!(code(me.create(&me.urn, "One", Some(one))).0, 422);
    assert_eq!(code(me.create(&me.urn, "Many", Some(many))).0, 422);
    let two_kinds = json!({"media": {"id": thumb}, "poll": {"question": "q", "options": [], "settings": {"duration": "ONE_DAY"}}});
    assert_eq!(code(me.create(&me.urn, "Two", Some(two_kinds))).0, 422);
    let long_alt = json!({"media": {"id": thumb, "altText": "x".repeat(4087)}});
    assert_eq!(
        code(me.create(&me.urn, "Alt", Some(long_alt))).1,
        "FIELD_LENGTH_TOO_LONG"
    );
}

#[test]
fn comments_edits_and_deletes_only_by_the_author() {
    let sb = Sandbox::start();
    let me = me(&sb);
    let you = member(&sb, "you", "openid profile w_member_social", &[]);
    let post = created_urn(me.create(&me.urn, "Hello \\(world\\)", None));
    let comments_path = format!("/rest/socialActions/{}/comments", enc(&post));
    let comment = |m: &Member, actor: &str, object: &str, text: &str| {
        m.post(
            &comments_path,
            json!({"actor": actor, "object": object, "message": {"text": text}}),
        )
    };

    // Comment text is stored as received: it is not Little Text.
    let first = comment(&me, &me.urn, &post, "First (raw) #text @x");
    let comment_urn = created_urn(first);
    assert!(
        comment_urn.starts_with("urn:li:comment:(urn:li:activity:"),
        "{comment_urn}"
    );
    assert_eq!(code(comment(&me, &me.urn, "urn:li:share:1", "x")).0, 400);
    assert_eq!(code(comment(&you, &me.urn, &post, "x")).1, "ACCESS_DENIED");
    assert_eq!(code(comment(&you, &you.urn, "urn:li:share:1", "x")).0, 400);

    // The permission is disputed: a sandbox switch refuses every comment.
    sb.configure(json!({"comments_forbidden": true}));
    assert_eq!(code(comment(&me, &me.urn, &post, "no")).1, "ACCESS_DENIED");
    sb.configure(json!({"comments_forbidden": false}));
    // The ordinary faults apply: stored, then a 503.
    sb.faults(json!([{"path": "/rest/socialActions/*", "status": 503, "stored": true}]));
    assert_eq!(comment(&me, &me.urn, &post, "Second").status(), 503);
    let p = post_of(&sb, &post);
    let texts: Vec<&Value> = p["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["text"])
        .collect();
    assert_eq!(texts, [&json!("First (raw) #text @x"), &json!("Second")]);
    assert_eq!(p["comments"][0]["urn"], comment_urn.as_str());
    assert_eq!(p["comments"][0]["actor"], me.urn.as_str());

    // Edits: PARTIAL_UPDATE of the commentary by the author only.
    let path = format!("/rest/posts/{}", enc(&post));
    let edit = |m: &Member, set: Value, method: Option<&str>| {
        let mut req = m.call(reqwest::Method::POST, &path);
        if let Some(method) = method {
            req = req.header("X-RestLi-Method", method);
        }
        req.json(&json!({"patch": {"$set": set}})).send().unwrap()
    };
    let text = json!({"commentary": "Hello again \\(world\\)"});
    assert_eq!(code(edit(&me, text.clone(), None)).0, 400);
    assert_eq!(
        code(edit(&you, text.clone(), Some("PARTIAL_UPDATE"))).1,
        "ACCESS_DENIED"
    );
    let media = json!({"content": {"media": {"id": "urn:li:image:1"}}});
    assert_eq!(code(edit(&me, media, Some("PARTIAL_UPDATE"))).0, 400);
    assert_eq!(edit(&me, text, Some("PARTIAL_UPDATE")).status(), 204);
    let p = post_of(&sb, &post);
    assert_eq!(p["text"], "Hello again (world)");
    assert_eq!(p["edits"][0]["text"], "Hello again (world)");
    assert_eq!(
        p["edits"][0]["set"]["commentary"],
        "Hello again \\(world\\)"
    );

    let poll = json!({"poll": {"question": "Q?", "options": [{"text": "a"}, {"text": "b"}], "settings": {"duration": "ONE_DAY"}}});
    let poll_post = created_urn(me.create(&me.urn, "Poll", Some(poll)));
    let poll_edit = me
        .call(
            reqwest::Method::POST,
            &format!("/rest/posts/{}", enc(&poll_post)),
        )
        .header("X-RestLi-Method", "PARTIAL_UPDATE")
        .json(&json!({"patch": {"$set": {"commentary": "Changed"}}}))
        .send()
        .unwrap();
    let (status, _, message) = code(poll_edit);
    assert_eq!(status, 422);
    assert!(message.contains("poll cannot be edited"), "{message}");

    // Delete: the author only, 204 twice, unknown is 404; it stays listed as deleted.
    let delete = |m: &Member, urn: &str| {
        m.call(
            reqwest::Method::DELETE,
            &format!("/rest/posts/{}", enc(urn)),
        )
        .send()
        .unwrap()
    };
    assert_eq!(code(delete(&you, &post)).1, "ACCESS_DENIED");
    assert_eq!(code(delete(&me, "urn:li:share:42")).0, 404);
    assert_eq!(delete(&me, &post).status(), 204);
    assert_eq!(delete(&me, &post).status(), 204);
    let p = post_of(&sb, &post);
    assert_eq!(p["deleted"], true);
    assert_eq!(code(comment(&me, &me.urn, &post, "late")).0, 404);
    assert_eq!(
        code(edit(
            &me,
            json!({"commentary": "x"}),
            Some("PARTIAL_UPDATE")
        ))
        .0,
        404
    );

    // The author finder sorts by last modification (an edit counts), and a deleted page post
    // leaves it.
    let page_post = created_urn(me.create(ORG, "Page post", None));
    std::thread::sleep(Duration::from_millis(20));
    let later = created_urn(me.create(ORG, "Later page post", None));
    let finder = format!("/rest/posts?author={}&q=author&count=10", enc(ORG));
    let ids = |m: &Member| -> Vec<String> {
        m.get(&finder).json::<Value>().unwrap()["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&me), [later.clone(), page_post.clone()]);
    std::thread::sleep(Duration::from_millis(20));
    let edited = me
        .call(
            reqwest::Method::POST,
            &format!("/rest/posts/{}", enc(&page_post)),
        )
        .header("X-RestLi-Method", "PARTIAL_UPDATE")
        .json(&json!({"patch": {"$set": {"commentary": "Page post, edited"}}}))
        .send()
        .unwrap();
    assert_eq!(edited.status(), 204);
    assert_eq!(ids(&me), [page_post.clone(), later.clone()]);
    assert_eq!(delete(&me, &page_post).status(), 204);
    assert_eq!(ids(&me), [later]);
}

#[test]
fn the_sandbox_answers_as_the_notes_say_for_bodies_userinfo_documents_and_duplicates() {
    let sb = Sandbox::start();
    sb.configure(json!({"media_processing_ms": 0}));
    let me = me(&sb);

    // A body not sent as JSON is refused, even when it is JSON.
    let body = json!({"author": me.urn, "commentary": "x", "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED"}, "lifecycleState": "PUBLISHED"});
    let r = me
        .call(reqwest::Method::POST, "/rest/posts")
        .header("Content-Type", "text/plain")
        .body(body.to_string())
        .send()
        .unwrap();
    let (status, c, _) = code(r);
    assert_eq!((status, c.as_str()), (400, "ILLEGAL_ARGUMENT"));
    assert!(sb.posts().is_empty());

    // userinfo needs `openid profile`.
    let bare: Value = client()
        .post(format!("{}/_sandbox/token", sb.url))
        .json(&json!({"member": "bare", "scope": "openid w_member_social"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let r = client()
        .get(format!("{}/v2/userinfo", sb.url))
        .bearer_auth(bare["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);

    // A member's own document: its status can be read (only images are refused).
    let doc = me.upload("documents", &me.urn, b"%PDF-1.4\n%%EOF\n");
    let v = wait_status(&me, "documents", &doc, "AVAILABLE");
    assert_eq!(v["owner"], me.urn);

    // The duplicate check compares the commentary and the author, whatever the content.
    let first = created_urn(me.create(&me.urn, "Same words", None));
    let media = json!({"media": {"id": doc, "title": "Deck"}});
    let (status, c, message) = code(me.create(&me.urn, "Same words", Some(media)));
    assert_eq!((status, c.as_str()), (422, ""), "{message}");
    assert!(
        message.contains(&format!("duplicate of {first}")),
        "{message}"
    );
}

#[test]
fn a_post_body_with_a_field_linkedin_does_not_know_is_refused_not_dropped() {
    let sb = Sandbox::start();
    let m = me(&sb);
    let urn = m.urn.clone();
    // Misspelled at the top, inside `distribution`, and inside a content kind.
    for (body, field) in [
        (json!({"visibilty": "PUBLIC"}), "/visibilty"),
        (
            json!({"distribution": {"feedDistribution": "MAIN_FEED", "targetEntity": []}}),
            "/distribution/targetEntity",
        ),
        (
            json!({"content": {"poll": {"question": "Q?", "options": [{"text": "a"}, {"txt": "b"}], "settings": {"duration": "ONE_DAY"}}}}),
            "/content/poll/options/[]/txt",
        ),
    ] {
        let mut full = json!({
            "author": urn,
            "commentary": "Field check",
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false
        });
        for (k, v) in body.as_object().unwrap() {
            full[k] = v.clone();
        }
        let r = m.post("/rest/posts", full);
        assert_eq!(r.status(), 422, "{field}");
        let text = r.text().unwrap();
        assert!(
            text.contains(&format!("ERROR :: {field} :: unrecognized field")),
            "{text}"
        );
    }
    assert!(sb.posts().is_empty());
    // The documented fields alone are taken.
    assert_eq!(m.create(&urn, "Field check", None).status(), 201);
}
