//! Secret values (a bot token, a webhook URL) that never show themselves in logs, `Debug` output or printed
//! configuration.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every secret looks like when printed.
pub const MASK: &str = "********";

#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The secret itself, for the one place that must hand it to a platform SDK.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// A URL that may carry a secret in its path or query, as incoming webhooks do (`https://hooks.slack.com/services/
/// T0/B0/XXXX`): printed as its scheme and host only (`https://hooks.slack.com/********`), so logs still say where
/// it points.
#[derive(Clone, PartialEq)]
pub struct SecretUrl(Secret);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> Self {
        SecretUrl(Secret::new(value))
    }

    /// The URL itself, for the one place that sends to it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The scheme and host (and port), with any user, path and query masked.
    pub fn masked(&self) -> String {
        let url = self.expose();
        let Some((scheme, rest)) = url.split_once("://") else { return MASK.to_owned() };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let mut shown = format!("{scheme}://");
        let host = match authority.rsplit_once('@') {
            Some((_, host)) => {
                shown.push_str(MASK);
                shown.push('@');
                host
            }
            None => authority,
        };
        shown.push_str(host);
        if !tail.is_empty() && tail != "/" {
            shown.push('/');
            shown.push_str(MASK);
        }
        shown
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretUrl::new)
    }
}
