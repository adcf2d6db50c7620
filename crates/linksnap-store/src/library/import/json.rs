//! JSON bookmark exports read one entry at a time: the array is never held whole, only the
//! entry being read (as a `serde_json::Value`) and the batch it joins.

use std::io::Read;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

use super::{ImportError, ImportItem};

/// Reads a JSON export (an array of objects) from `input`, handing each entry to `each`;
/// `each` returns `false` to stop the reading. Field names of linksnap (`url`, `title`,
/// `note`, `tags`, `created_at`, `unread`, `favourite`), Pinboard (`href`, `description`,
/// `extended`, `tags` space-separated, `time`, `toread`) and linkding (`url`, `title`,
/// `description`, `tag_names`, `date_added`, `unread`) are understood.
///
/// # Errors
/// [`ImportError::Format`] naming the line and column of bad JSON, or that the reading was
/// stopped.
pub fn read_json(
    input: impl Read,
    each: &mut dyn FnMut(ImportItem) -> bool,
) -> Result<(), ImportError> {
    let bad = |e: serde_json::Error| ImportError::Format(format!("JSON: {e}"));
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(input));
    Entries { each }.deserialize(&mut de).map_err(bad)?;
    de.end().map_err(bad)
}

/// The visitor of the top-level array: each element is read, converted and handed on
/// before the next is read.
struct Entries<'f> {
    each: &'f mut dyn FnMut(ImportItem) -> bool,
}

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of bookmarks")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element::<Value>()? {
            if !(self.each)(item_of(&entry)) {
                return Err(de::Error::custom("the import stopped"));
            }
        }
        Ok(())
    }
}

/// One entry in any of the dialects.
fn item_of(e: &Value) -> ImportItem {
    let s = |k: &str| e.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let pinboard = e.get("href").is_some();
    let tags = match e.get("tags").or_else(|| e.get("tag_names")) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(t)) => {
            let sep = if t.contains(',') { ',' } else { ' ' };
            t.split(sep)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        }
        _ => Vec::new(),
    };
    let time = |v: &Value| match v {
        Value::Number(n) => n
            .as_i64()
            .map(|n| if n > 100_000_000_000 { n } else { n * 1000 }),
        Value::String(t) => humantime::parse_rfc3339_weak(t)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64),
        _ => None,
    };
    let flag = |v: &Value| match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(s == "yes" || s == "true" || s == "1"),
        Value::Number(n) => Some(n.as_i64() == Some(1)),
        _ => None,
    };
    ImportItem {
        url: s("url").or_else(|| s("href")).unwrap_or_default(),
        title: if pinboard {
            s("description")
        } else {
            s("title")
        },
        note: if pinboard {
            s("extended")
        } else {
            s("note").or_else(|| s("description"))
        },
        tags,
        created_at: ["created_at", "time", "date_added", "add_date"]
            .iter()
            .find_map(|k| e.get(*k).and_then(time)),
        unread: ["unread", "toread"]
            .iter()
            .find_map(|k| e.get(*k).and_then(flag)),
        favourite: e.get("favourite").and_then(flag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a JSON export held in memory.
    fn parse_json(bytes: &[u8]) -> Result<Vec<ImportItem>, ImportError> {
        let mut items = Vec::new();
        read_json(bytes, &mut |item| {
            items.push(item);
            true
        })?;
        Ok(items)
    }

    #[test]
    fn json_of_several_dialects_parses() {
        let items = parse_json(
            br#"[{"url":"https://a.test/","title":"A","tags":["x","y"],"created_at":"2024-01-02T03:04:05Z","unread":false},
                {"href":"https://b.test/","description":"B","extended":"note","tags":"p q","time":"2024-01-01T00:00:00Z","toread":"yes"},
                {"url":"https://c.test/","tag_names":["z"],"date_added":1700000000}]"#,
        )
        .unwrap();
        assert_eq!(items[0].tags, ["x", "y"]);
        assert_eq!(items[0].unread, Some(false));
        assert_eq!(items[0].created_at, Some(1_704_164_645_000));
        assert_eq!(
            (items[1].title.as_deref(), items[1].note.as_deref()),
            (Some("B"), Some("note"))
        );
        assert_eq!(items[1].tags, ["p", "q"]);
        assert_eq!(items[1].unread, Some(true));
        assert_eq!(items[2].created_at, Some(1_700_000_000_000));
        assert!(
            parse_json(b"{\"a\":1}")
                .unwrap_err()
                .to_string()
                .contains("expected an array")
        );
        assert!(
            parse_json(b"[{")
                .unwrap_err()
                .to_string()
                .contains("line 1 column 2")
        );
        assert!(
            parse_json(b"[{\"url\":\"https://a.test/\"}] x")
                .unwrap_err()
                .to_string()
                .contains("trailing characters at line 1 column 29")
        );
    }

    /// A reader that fails the test if it is read past `limit` bytes.
    struct Watched<'a> {
        bytes: &'a [u8],
        at: usize,
        limit: usize,
    }

    impl Read for Watched<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            assert!(self.at <= self.limit, "read past {} bytes", self.limit);
            let n = buf.len().min(self.bytes.len() - self.at).min(64);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn entries_are_handed_on_as_they_are_read_not_after_the_array() {
        let entry = r#"{"url":"https://a.test/","title":"a title long enough to count"},"#;
        let mut text = String::from("[");
        for _ in 0..10_000 {
            text.push_str(entry);
        }
        text.push_str(r#"{"url":"https://z.test/"}]"#);
        // The array is 640 KB; the reader refuses to be read beyond 16 KiB (the buffered
        // reader takes 8 KiB at a time), so the entries must be handed on as they arrive, and
        // stopping after the third ends the reading.
        let mut watched = Watched {
            bytes: text.as_bytes(),
            at: 0,
            limit: 16 << 10,
        };
        let mut seen = 0;
        let r = read_json(&mut watched, &mut |item| {
            seen += 1;
            assert_eq!(item.url, "https://a.test/");
            seen < 3
        });
        assert_eq!(seen, 3);
        assert!(r.unwrap_err().to_string().contains("the import stopped"));
    }
}
