//! Query strings of the REST endpoints: `name=value` pairs separated by `&`, percent-decoded
//! (`+` is a space, as HTML forms and Go's `url.ParseQuery` have it). Names may repeat
//! (`topic=a&topic=b`). A bad escape or a value that is not UTF-8 is a 400 naming the
//! parameter.

use http::StatusCode;

use super::super::message::HttpResponse;

/// A parsed query string, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses the part of a request target after `?`.
    pub fn parse(raw: &str) -> Result<Query, HttpResponse> {
        let mut pairs = Vec::new();
        for piece in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            let name = decode(name).ok_or_else(|| {
                bad(&format!(
                    "the query string has a malformed parameter name '{name}'"
                ))
            })?;
            let value = decode(value).ok_or_else(|| {
                bad(&format!(
                    "query parameter '{name}' is not valid percent-encoded UTF-8"
                ))
            })?;
            pairs.push((name, value));
        }
        Ok(Query { pairs })
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of `name`, or a 400 saying it is missing.
    pub fn required(&self, name: &str) -> Result<&str, HttpResponse> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(bad(&format!("missing query parameter '{name}'"))),
        }
    }

    /// `name` parsed as a number, if present (and non-empty).
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, HttpResponse> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                bad(&format!(
                    "query parameter '{name}' must be a non-negative integer, not '{v}'"
                ))
            }),
        }
    }
}

/// A 400 with `message`.
pub fn bad(message: &str) -> HttpResponse {
    HttpResponse::error(StatusCode::BAD_REQUEST, message)
}

/// Percent-decodes one name or value; `None` for a bad escape or bytes that are not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let digit = |c: u8| (c as char).to_digit(16);
                out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(decode("caf%C3%A9").as_deref(), Some("caf\u{e9}"));
        assert_eq!(decode("%2B%26%3d").as_deref(), Some("+&="));
        assert_eq!(decode("100%"), None);
        assert_eq!(decode("%g0"), None);
        assert_eq!(decode("%+1"), None);
        assert_eq!(decode("%FF"), None);
    }

    #[test]
    fn pairs_repeat_and_keep_order() {
        let q = Query::parse("consumerId=c%201&topic=a&topic=b&&flag&group=").unwrap();
        assert_eq!(q.get("consumerId"), Some("c 1"));
        assert_eq!(q.all("topic").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.get("flag"), Some(""));
        assert!(q.required("group").is_err());
        assert!(q.required("nope").is_err());
        assert_eq!(q.get("nope"), None);
    }

    #[test]
    fn numbers() {
        let q = Query::parse("maxWaitMs=250&bad=-1&empty=").unwrap();
        assert_eq!(q.number::<u32>("maxWaitMs").unwrap(), Some(250));
        assert_eq!(q.number::<u32>("empty").unwrap(), None);
        assert_eq!(q.number::<u32>("missing").unwrap(), None);
        let e = q.number::<u32>("bad").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8(e.body.to_vec())
            .unwrap()
            .contains("'bad'"));
    }

    #[test]
    fn malformed_escapes_name_the_parameter() {
        let e = Query::parse("consumerId=%zz").unwrap_err();
        assert!(String::from_utf8(e.body.to_vec())
            .unwrap()
            .contains("'consumerId'"));
    }
}
