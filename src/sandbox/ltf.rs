//! LinkedIn's side of the Little Text Format: what members see of a `commentary`.
//!
//! Written independently of the client's escaper (`linkedin::ltf`) so that a test of one
//! against the other means something. Like LinkedIn, an unescaped reserved character that
//! starts no element cuts the text there.

const RESERVED: &str = "\\|{}@[]()<>#*_~";

/// The text a reader sees: escapes resolved, hashtags and mentions kept in their source form,
/// the hashtag template `{hashtag|\#|word}` shown as `#word`, and everything from the first
/// stray reserved character on dropped.
pub fn visible_text(commentary: &str) -> String {
    let chars: Vec<char> = commentary.chars().collect();
    let mut out = String::with_capacity(commentary.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            match chars.get(i + 1) {
                Some(&next) => {
                    out.push(next);
                    i += 2;
                    continue;
                }
                None => break,
            }
        }
        if !RESERVED.contains(c) {
            out.push(c);
            i += 1;
            continue;
        }
        if let Some((shown, used)) = element(&chars[i..], out.chars().last()) {
            out.push_str(&shown);
            i += used;
            continue;
        }
        // LinkedIn's behaviour: the text ends at a stray reserved character.
        break;
    }
    out
}

/// A markup element starting at `s[0]`: (what is shown, chars consumed).
fn element(s: &[char], prev: Option<char>) -> Option<(String, usize)> {
    match s[0] {
        '#' => {
            // A hashtag is a word with a letter in it: `#2026` is a stray `#`.
            let at_word_start = prev.is_none_or(|p| !p.is_alphanumeric());
            let word = s[1..].iter().take_while(|c| c.is_alphanumeric()).count();
            let letter = s[1..=word].iter().any(|c| c.is_alphabetic());
            (at_word_start && letter).then(|| (s[..=word].iter().collect(), word + 1))
        }
        '@' => mention(s).map(|n| (s[..n].iter().collect(), n)),
        '{' => template(s),
        _ => None,
    }
}

/// `@[Name](urn:li:person:ID)` or `@[Name](urn:li:organization:ID)`.
fn mention(s: &[char]) -> Option<usize> {
    let text: String = s.iter().collect();
    let rest = text.strip_prefix("@[")?;
    let close = rest.find("](")?;
    let name = &rest[..close];
    if name.is_empty() || name.contains(|c| "[]()\\\n".contains(c)) {
        return None;
    }
    let urn_part = &rest[close + 2..];
    let end = urn_part.find(')')?;
    let urn = &urn_part[..end];
    let id = urn
        .strip_prefix("urn:li:person:")
        .or_else(|| urn.strip_prefix("urn:li:organization:"))?;
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return None;
    }
    Some(2 + name.chars().count() + 2 + urn.chars().count() + 1)
}

/// `{hashtag|\#|word}` → `#word`.
fn template(s: &[char]) -> Option<(String, usize)> {
    let text: String = s.iter().collect();
    let rest = text.strip_prefix("{hashtag|\\#|")?;
    let end = rest.find('}')?;
    let word = &rest[..end];
    if word.is_empty() || !word.chars().all(char::is_alphanumeric) {
        return None;
    }
    Some((
        format!("#{word}"),
        "{hashtag|\\#|".chars().count() + word.chars().count() + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::visible_text;

    #[test]
    fn cuts_at_a_stray_reserved_character() {
        assert_eq!(visible_text("This is a test. (This…"), "This is a test. ");
        assert_eq!(
            visible_text(r"This is a test. \(This…"),
            "This is a test. (This…"
        );
    }

    #[test]
    fn keeps_elements() {
        assert_eq!(
            visible_text("#rust and {hashtag|\\#|tokio}"),
            "#rust and #tokio"
        );
        assert_eq!(
            visible_text("hi @[Ada](urn:li:person:1)!"),
            "hi @[Ada](urn:li:person:1)!"
        );
    }
}
