//! Just enough XML for S3: text of named elements, and escaping for the one body we send.
//!
//! Decision: S3 replies we read (errors, InitiateMultipartUploadResult, list results) are
//! flat, attribute-free leaf elements, so a tag scanner is enough and keeps a full XML
//! parser out of the component. It reads only the elements it is asked for and unescapes
//! the five predefined entities and numeric references.

/// Texts of every `<tag>...</tag>` leaf element, in document order.
pub fn texts(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(unescape(&after[..end]));
        rest = &after[end + close.len()..];
    }
    out
}

/// Text of the first `<tag>...</tag>` element.
pub fn text(xml: &str, tag: &str) -> Option<String> {
    texts(xml, tag).into_iter().next()
}

/// Escapes text for an XML element body.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let Some(semi) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_leaf_texts() {
        let x = r#"<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>a &amp; b &#x41;&#66;</Message><Key>k</Key></Error>"#;
        assert_eq!(text(x, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(text(x, "Message").as_deref(), Some("a & b AB"));
        assert_eq!(text(x, "Missing"), None);
        let l = "<U><UploadId>1</UploadId></U><U><UploadId>2</UploadId></U>";
        assert_eq!(texts(l, "UploadId"), vec!["1", "2"]);
    }

    #[test]
    fn escapes_round_trip() {
        let s = r#""etag"<&>'"#;
        assert_eq!(unescape(&escape(s)), s);
        assert_eq!(escape("\"e\""), "&quot;e&quot;");
    }
}
