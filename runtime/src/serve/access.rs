//! Who may use the server: with `--serve-token`, every route but `/healthz` needs the token;
//! reads take it as `?token=...` or `Authorization: Bearer ...`, commands (POSTs) only from the
//! header, since a cross-site form can carry a query string but not a header. Without a token,
//! reads are open and commands refused.

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: the token is missing or wrong.
    Unauthorized,
    /// 403: a command, and the server has no token (commands need one).
    CommandsNeedToken,
}

impl Refusal {
    /// HTTP status of the refusal.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Unauthorized => 401,
            Refusal::CommandsNeedToken => 403,
        }
    }

    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized: add ?token=... or Authorization: Bearer ...\n",
            Refusal::CommandsNeedToken => {
                "commands need --serve-token, sent as Authorization: Bearer ...\n"
            }
        }
    }
}

/// Decides access for one request: `is_command` for methods that change state (POST),
/// `query` the raw query string, `authorization` the raw `Authorization` header.
pub fn check_access(
    token: Option<&str>,
    is_command: bool,
    query: Option<&str>,
    authorization: Option<&[u8]>,
) -> Result<(), Refusal> {
    let by_header = |t: &str| {
        authorization
            .and_then(bearer)
            .is_some_and(|b| same_secret(b, t.as_bytes()))
    };
    match (token, is_command) {
        (None, true) => Err(Refusal::CommandsNeedToken),
        (None, false) => Ok(()),
        (Some(t), true) if by_header(t) => Ok(()),
        (Some(t), false)
            if by_header(t)
                || query
                    .and_then(|q| query_param(q, "token"))
                    .is_some_and(|q| same_secret(q.as_bytes(), t.as_bytes())) =>
        {
            Ok(())
        }
        (Some(_), _) => Err(Refusal::Unauthorized),
    }
}

/// The credentials of an `Authorization: Bearer ...` header value.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.first()?.is_ascii_whitespace() {
        return None;
    }
    Some(rest.trim_ascii())
}

/// The percent-decoded value of `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(v))
}

/// Decodes `%XX` escapes and `+`; `None` for invalid escapes or UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Compares secrets without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "s3cr/t+x";

    #[test]
    fn reads_take_the_token_from_query_or_header() {
        assert_eq!(check_access(None, false, None, None), Ok(()));
        assert_eq!(
            check_access(Some(T), false, Some("token=s3cr%2Ft%2Bx"), None),
            Ok(())
        );
        assert_eq!(
            check_access(Some(T), false, None, Some(b"Bearer s3cr/t+x")),
            Ok(())
        );
        assert_eq!(
            check_access(Some(T), false, None, Some(b"bearer   s3cr/t+x ")),
            Ok(())
        );
        // `+` in a query is a space, so the raw token does not match.
        for q in [
            "token=s3cr/t+x",
            "token=wrong",
            "tok=s3cr%2Ft%2Bx",
            "token=%zz",
            "",
        ] {
            assert_eq!(
                check_access(Some(T), false, Some(q), None),
                Err(Refusal::Unauthorized),
                "{q}"
            );
        }
        for h in [
            &b"Basic s3cr/t+x"[..],
            b"Bearers3cr/t+x",
            b"Bearer",
            b"Bearer s3cr/t+",
        ] {
            assert_eq!(
                check_access(Some(T), false, None, Some(h)),
                Err(Refusal::Unauthorized)
            );
        }
    }

    #[test]
    fn commands_need_a_configured_token_in_the_header() {
        assert_eq!(
            check_access(None, true, None, Some(b"Bearer x")),
            Err(Refusal::CommandsNeedToken)
        );
        assert_eq!(
            check_access(Some(T), true, Some("token=s3cr%2Ft%2Bx"), None),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            check_access(Some(T), true, None, Some(b"Bearer s3cr/t+x")),
            Ok(())
        );
        assert_eq!(Refusal::CommandsNeedToken.status(), 403);
        assert_eq!(Refusal::Unauthorized.status(), 401);
    }

    #[test]
    fn percent_encoding_round_trips() {
        let s = "a b/ç+%";
        assert_eq!(percent_decode(&percent_encode(s)).as_deref(), Some(s));
        assert_eq!(percent_encode("cam-1_x.y~"), "cam-1_x.y~");
    }
}
