//! `--mqtt` broker addresses: `mqtt://[user:pass@]host[:port]` and `mqtts://` (TLS).

use std::fmt;

use crate::error::{Error, Result};

const OPTION: &str = "--mqtt";

/// Where the broker is and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// TLS (`mqtts://`, `ssl://`).
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// The password never appears in logs.
impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// `mqtt://user@host:port`, without the password.
impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{user}{host}:{}", self.port)
    }
}

fn bad(spec: &str, why: &str) -> Error {
    let shown = redact(spec);
    Error::option(
        OPTION,
        format!("`{shown}` {why}; expected mqtt://[user:pass@]host[:port] or mqtts://..."),
    )
}

/// The address with any password replaced by `***`, for error messages.
fn redact(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_string();
    };
    match rest.rsplit_once('@') {
        Some((cred, host)) => match cred.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => spec.to_string(),
        },
        None => spec.to_string(),
    }
}

/// Decodes `%XX` escapes (user names and passwords may hold `@`, `:` or `/`).
fn percent_decode(s: &str, spec: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(spec, "has a broken %-escape in the user or password"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(spec, "has a user or password that is not UTF-8"))
}

impl std::str::FromStr for BrokerUrl {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let (scheme, rest) = spec
            .split_once("://")
            .ok_or_else(|| bad(spec, "has no scheme"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" | "tls" => true,
            other => return Err(bad(spec, &format!("has the unknown scheme `{other}`"))),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains(['/', '?', '#']) {
            return Err(bad(
                spec,
                "has a path or query, which MQTT addresses do not take",
            ));
        }
        let (cred, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let (user, password) = match cred {
            Some(c) => {
                let (u, p) = match c.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (c, None),
                };
                if u.is_empty() {
                    return Err(bad(spec, "has an empty user name before '@'"));
                }
                (
                    Some(percent_decode(u, spec)?),
                    p.map(|p| percent_decode(p, spec)).transpose()?,
                )
            }
            None => (None, None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad(spec, "has an unclosed '[' in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad(spec, "has no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(spec, &format!("has the invalid port `{p}`")))?,
            None if tls => 8883,
            None => 1883,
        };
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port,
            user,
            password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<BrokerUrl> {
        s.parse()
    }

    #[test]
    fn parses_plain_tls_credentials_and_ipv6() {
        let u = parse("mqtt://localhost").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "localhost", 1883));
        let u = parse("mqtts://broker.lan").unwrap();
        assert_eq!((u.tls, u.port), (true, 8883));
        let u = parse("mqtt://ha:s%40cret@10.0.0.2:1884/").unwrap();
        assert_eq!(u.user.as_deref(), Some("ha"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.2", 1884));
        assert_eq!(u.to_string(), "mqtt://ha@10.0.0.2:1884");
        assert!(!format!("{u:?}").contains("cret"));
        let u = parse("mqtt://[::1]:2000").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 2000));
        assert_eq!(u.to_string(), "mqtt://[::1]:2000");
    }

    #[test]
    fn bad_addresses_say_what_is_wrong_without_the_password() {
        for (spec, why) in [
            ("localhost:1883", "no scheme"),
            ("http://x", "unknown scheme"),
            ("mqtt://", "no host"),
            ("mqtt://host:99999", "invalid port"),
            ("mqtt://host:0", "invalid port"),
            ("mqtt://host/topic", "path"),
            ("mqtt://:pw@host", "empty user"),
            ("mqtt://u:p%zz@host", "%-escape"),
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.contains("--mqtt") && e.contains(why), "{spec}: {e}");
        }
        let e = parse("mqtt://u:hunter2@host:x").unwrap_err().to_string();
        assert!(!e.contains("hunter2") && e.contains("u:***@"), "{e}");
    }
}
