//! LinkedIn's Little Text Format, client side: plain draft text → the `commentary` field.
//!
//! Every reserved character is escaped with a backslash, because LinkedIn silently cuts the
//! text at an unescaped one. Two things a draft author means as markup stay markup:
//! a hashtag `#word` and an explicit mention `@[Name](urn:li:person:ID)` (or organization).
//! The unescaping side lives in the sandbox and shares no code with this one.

/// The characters LinkedIn reserves in `commentary`.
pub const RESERVED: &[char] = &[
    '\\', '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '*', '_', '~',
];

/// Escapes draft text for the `commentary` field.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().expect("i is on a char boundary");
        if c == '@' {
            if let Some(len) = mention_len(rest) {
                out.push_str(&rest[..len]);
                prev = Some(')');
                i += len;
                continue;
            }
        }
        if c == '#' && starts_hashtag(prev, &rest[1..]) {
            out.push('#');
        } else {
            if RESERVED.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
        prev = Some(c);
        i += c.len_utf8();
    }
    out
}

/// `#` starts a hashtag when it begins a word and the word after it (letters and digits) holds
/// a letter: `#rust`, `#100DaysOfCode`, `#5G`. `#1` or `#2026` is escaped: shown the same
/// either way, and if LinkedIn does not take a number for a hashtag, an unescaped `#` there
/// would cut the text.
fn starts_hashtag(prev: Option<char>, after: &str) -> bool {
    let word_start = prev.is_none_or(|p| !p.is_alphanumeric() && p != '#');
    word_start
        && after
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .any(char::is_alphabetic)
}

/// Length in bytes of `@[Name](urn:li:person:ID)` or `…organization:ID)` at the start of `s`.
fn mention_len(s: &str) -> Option<usize> {
    let inner = s.strip_prefix("@[")?;
    let name_end = inner.find(']')?;
    let name = &inner[..name_end];
    if name.is_empty() || name.contains(['[', '(', ')', '\\', '\n']) {
        return None;
    }
    let after = inner[name_end..].strip_prefix("](")?;
    let id = after
        .strip_prefix("urn:li:person:")
        .or_else(|| after.strip_prefix("urn:li:organization:"))?;
    let id_len = id
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or(id.len());
    if id_len == 0 || !id[id_len..].starts_with(')') {
        return None;
    }
    let urn_len = after.len() - id.len() + id_len;
    Some(2 + name_end + 2 + urn_len + 1)
}

#[cfg(test)]
mod tests {
    use super::escape;
    use crate::sandbox::ltf::visible_text;

    #[test]
    fn escapes_every_reserved_character() {
        assert_eq!(
            escape(r"\ | { } @ [ ] ( ) < > # * _ ~"),
            r"\\ \| \{ \} \@ \[ \] \( \) \< \> \# \* \_ \~"
        );
    }

    #[test]
    fn keeps_hashtags_and_mentions() {
        assert_eq!(escape("Ship it #rust #2026!"), r"Ship it #rust \#2026!");
        assert_eq!(escape("We're #1 (again)"), r"We're \#1 \(again\)");
        assert_eq!(escape("#100DaysOfCode #5G"), "#100DaysOfCode #5G");
        assert_eq!(escape("C# and a#b"), r"C\# and a\#b");
        assert_eq!(
            escape("Thanks @[Ada (Lovelace)](urn:li:person:1) and @[Acme](urn:li:organization:2414183)."),
            r"Thanks \@\[Ada \(Lovelace\)\]\(urn:li:person:1\) and @[Acme](urn:li:organization:2414183)."
        );
        assert_eq!(escape("@[x](urn:li:share:1)"), r"\@\[x\]\(urn:li:share:1\)");
    }

    #[test]
    fn round_trips_through_linkedins_unescaping() {
        let samples = [
            "This is a test. (This part used to vanish.)",
            r"\ | { } @ [ ] ( ) < > # * _ ~",
            "emoji 🚀 (ok) and ümlauts_*bold*_ ~strike~ <tag> {x|y}",
            "#hashtag at start, #another, and ## double, trailing #",
            "email me@example.com [link](https://example.com)",
            "@[Ada](urn:li:person:abc-1) wrote \\n literally",
            "{hashtag|\\#|fake}",
            "",
        ];
        for s in samples {
            assert_eq!(visible_text(&escape(s)), s, "escaped: {}", escape(s));
        }
    }

    #[test]
    fn round_trips_every_pair_of_interesting_characters() {
        let alphabet = [
            '\\', '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '*', '_', '~', 'a', '1',
            ' ', '\n', 'é', ':',
        ];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let s: String = [a, b, c].iter().collect();
                    assert_eq!(visible_text(&escape(&s)), s, "{s:?} → {:?}", escape(&s));
                }
            }
        }
    }
}
