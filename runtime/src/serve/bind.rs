//! Turning `--serve` values into bound listeners, with reasons a user can act on.

use std::io;

/// Turns the `--serve` value into a bindable address; a bare port binds loopback.
pub fn bind_address(addr: &str) -> Result<String, String> {
    let a = addr.trim();
    if a.is_empty() {
        return Err("empty address (use e.g. 127.0.0.1:8080)".into());
    }
    let port = a.strip_prefix(':').unwrap_or(a);
    if port.bytes().all(|b| b.is_ascii_digit()) {
        return match port.parse::<u16>() {
            Ok(p) => Ok(format!("127.0.0.1:{p}")),
            Err(_) => Err(format!("port {port} is out of range")),
        };
    }
    Ok(a.to_string())
}

/// Says why binding failed, in words a user can act on.
pub fn bind_reason(addr: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            let low_port = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| p < 1024);
            if low_port {
                "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".into()
            } else {
                "permission denied".into()
            }
        }
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_ports_bind_loopback_and_bad_ones_say_why() {
        assert_eq!(bind_address("8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(bind_address(":0").unwrap(), "127.0.0.1:0");
        assert_eq!(bind_address("0.0.0.0:9").unwrap(), "0.0.0.0:9");
        assert!(bind_address("70000").unwrap_err().contains("out of range"));
        assert!(bind_address(" ").unwrap_err().contains("empty"));
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(bind_reason("0.0.0.0:80", &denied).contains("CAP_NET_BIND_SERVICE"));
        assert_eq!(bind_reason("0.0.0.0:8080", &denied), "permission denied");
    }
}
