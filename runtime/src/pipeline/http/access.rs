//! Who may listen where, and who may ask: an address beyond loopback needs
//! a token, and every request then carries it.

use std::net::{SocketAddr, ToSocketAddrs};

use base64::Engine;
use subtle::ConstantTimeEq;

use crate::config::{keys, HttpConfig, Secret};
use crate::error::{Error, Result};

/// The addresses `listen` names, refused when one is beyond loopback and
/// no token is set: profiles show the program's code and its agents'
/// names, and the endpoint can make the process sample itself.
pub(super) fn listen_addresses(config: &HttpConfig) -> Result<Vec<SocketAddr>> {
    let listen = config
        .listen
        .as_deref()
        .ok_or_else(|| Error::InvalidConfig {
            key: keys::HTTP_LISTEN.path.to_owned(),
            message: "is not set".to_owned(),
        })?;
    let addresses: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|e| Error::InvalidConfig {
            key: keys::HTTP_LISTEN.path.to_owned(),
            message: format!("{listen:?} is not an address to listen on: {e}"),
        })?
        .collect();
    if addresses.is_empty() {
        return Err(Error::InvalidConfig {
            key: keys::HTTP_LISTEN.path.to_owned(),
            message: format!("{listen:?} resolves to no address"),
        });
    }
    let beyond_loopback = addresses.iter().find(|a| !a.ip().is_loopback());
    if let (Some(address), None) = (beyond_loopback, &config.token) {
        return Err(Error::InvalidConfig {
            key: keys::HTTP_TOKEN.path.to_owned(),
            message: format!(
                "is required to listen on {address}, which is not a loopback address; \
                 set a token (or AGENTPROF_HTTP_TOKEN), or listen on 127.0.0.1"
            ),
        });
    }
    Ok(addresses)
}

/// Whether an `Authorization` header carries `token`: as a bearer token,
/// or as the password of basic auth (what `go tool pprof` sends for
/// `http://user:token@host/...`, and what a browser asks for).
pub(super) fn authorized(header: Option<&[u8]>, token: &Secret) -> bool {
    let Some(header) = header else {
        return false;
    };
    let presented = if let Some(bearer) = strip_scheme(header, b"bearer ") {
        bearer.trim_ascii().to_vec()
    } else if let Some(basic) = strip_scheme(header, b"basic ") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim_ascii())
        else {
            return false;
        };
        match decoded.iter().position(|&b| b == b':') {
            Some(colon) => decoded[colon + 1..].to_vec(),
            None => return false,
        }
    } else {
        return false;
    };
    // Constant time in the content; the length is not the secret.
    bool::from(presented.as_slice().ct_eq(token.expose().as_bytes()))
}

fn strip_scheme<'a>(header: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    (header.len() >= scheme.len() && header[..scheme.len()].eq_ignore_ascii_case(scheme))
        .then(|| &header[scheme.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    #[test]
    fn bearer_and_basic_carry_the_token() {
        let token = Secret::new(TOKEN);
        assert!(authorized(
            Some(format!("Bearer {TOKEN}").as_bytes()),
            &token
        ));
        assert!(authorized(
            Some(format!("bearer  {TOKEN} ").as_bytes()),
            &token
        ));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("pprof:{TOKEN}"));
        assert!(authorized(
            Some(format!("Basic {basic}").as_bytes()),
            &token
        ));
        assert!(!authorized(None, &token));
        assert!(!authorized(Some(b"Bearer wrong-token-0000000000"), &token));
        assert!(!authorized(Some(TOKEN.as_bytes()), &token));
        let no_colon = base64::engine::general_purpose::STANDARD.encode(TOKEN);
        assert!(!authorized(
            Some(format!("Basic {no_colon}").as_bytes()),
            &token
        ));
        assert!(!authorized(Some(b"Basic !!!"), &token));
    }

    #[test]
    fn beyond_loopback_needs_a_token() {
        let mut config = HttpConfig {
            listen: Some("0.0.0.0:0".to_owned()),
            ..HttpConfig::default()
        };
        let e = listen_addresses(&config).unwrap_err().to_string();
        assert!(e.contains(keys::HTTP_TOKEN.path), "{e}");
        config.token = Some(Secret::new(TOKEN));
        assert!(listen_addresses(&config).is_ok());
        config.listen = Some("127.0.0.1:0".to_owned());
        config.token = None;
        assert!(listen_addresses(&config).unwrap()[0].ip().is_loopback());
        config.listen = Some("not an address".to_owned());
        let e = listen_addresses(&config).unwrap_err().to_string();
        assert!(e.contains(keys::HTTP_LISTEN.path), "{e}");
    }
}
