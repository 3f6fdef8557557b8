//! Secrets in the configuration (passwords, tokens, header values) and URLs
//! that may carry credentials: whatever prints them (`Debug`, `Serialize`,
//! errors, logs) shows a placeholder.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const REDACTED: &str = "<redacted>";

/// A value that must not appear in logs, errors, `Debug` output or
/// serialized configuration. Read it with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// `url` without what may authenticate: the user-info part
/// (`https://user:token@host` becomes `https://<redacted>@host`) and the
/// query string.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("{REDACTED}@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let path = match path.find('?') {
        Some(q) => format!("{}?{REDACTED}", &path[..q]),
        None => path.to_owned(),
    };
    format!("{scheme}{authority}{path}")
}

/// Serializes an optional URL with [`redact_url`].
pub(crate) fn serialize_redacted_url<S: Serializer>(
    url: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    url.as_deref().map(redact_url).serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_url("https://user:t0ken@pyro.example:4040/base?key=abc"),
            "https://<redacted>@pyro.example:4040/base?<redacted>"
        );
        assert_eq!(redact_url("http://localhost:4040"), "http://localhost:4040");
        assert_eq!(redact_url("http://a@b@host/x"), "http://<redacted>@host/x");
        assert_eq!(format!("{:?}", Secret::from("pw")), "<redacted>");
    }
}
