//! Who may talk to the server: the host names it answers to (DNS rebinding), requests
//! from no other site (`Origin`, `Referer`, `Sec-Fetch-Site`), the form's CSRF token
//! bound to a cookie, and the security headers on every answer.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use hmac::{Hmac, Mac};
use rand::RngCore;

use super::{AppState, CSP, CSRF_COOKIE, Refusal};
use crate::jobs;

/// Headers every answer carries (unless the route set its own).
const SECURITY_HEADERS: [(&str, &str); 7] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    // not `no-referrer`: with it browsers send `Origin: null` on the form's own POST
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// A host name (lowercase, without a trailing dot; IPv6 in brackets) and port.
fn parse_authority(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    if s.is_empty()
        || s.len() > 255
        || s.contains(|c: char| c.is_whitespace() || c.is_control() || "/@?#\\".contains(c))
    {
        return None;
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let port = match &rest[end + 1..] {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (&s[..end + 2], port)
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return None,
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (s, None),
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some((host, port))
}

/// Who may talk to the server: the host names it answers to, and the secret of its
/// CSRF tokens.
#[derive(Debug)]
pub(super) struct Gate {
    /// (name, port): `None` is any port
    hosts: Vec<(String, Option<u16>)>,
    secret: [u8; 32],
}

impl Gate {
    /// The bound address and the localhost names at its port, and `extra`
    /// (`NAME[:PORT]`, without a port any port).
    pub(super) fn new(bound: SocketAddr, extra: &[String]) -> Result<Self, String> {
        let port = bound.port();
        let mut hosts: Vec<(String, Option<u16>)> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|h| (h.to_string(), Some(port)))
            .collect();
        if !bound.ip().is_unspecified() {
            let ip = match bound {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            hosts.push((ip, Some(port)));
        }
        for e in extra {
            let parsed = parse_authority(e)
                .ok_or_else(|| format!("--allowed-host `{e}`: expected NAME or NAME:PORT"))?;
            hosts.push(parsed);
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Ok(Self { hosts, secret })
    }

    fn allows(&self, name: &str, port: u16) -> bool {
        self.hosts
            .iter()
            .any(|(n, p)| n == name && p.is_none_or(|p| p == port))
    }

    fn shown(&self) -> String {
        let names: Vec<String> = self
            .hosts
            .iter()
            .map(|(n, p)| match p {
                Some(p) => format!("{n}:{p}"),
                None => n.clone(),
            })
            .collect();
        names.join(", ")
    }

    /// `Host` (and an absolute request target's authority) must name this server.
    fn check_host(&self, req: &Request) -> Option<Refusal> {
        let header = req.headers().get(header::HOST).map(|v| v.to_str().ok());
        let target = req.uri().authority().map(|a| a.as_str());
        let named: Vec<Option<&str>> = match (header, target) {
            (None, None) => {
                return Some(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "the request has no Host header",
                ));
            }
            (h, t) => h.into_iter().chain(t.map(Some)).collect(),
        };
        for h in named {
            let ok = h
                .and_then(parse_authority)
                .is_some_and(|(n, p)| self.allows(&n, p.unwrap_or(80)));
            if !ok {
                let shown = h.map_or("(not text)".to_string(), |h| {
                    crossomics_limits::excerpt_str(h, 80)
                });
                return Some(Refusal::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "this server does not answer to the host `{shown}`; it answers to {} \
                         (serving under another name needs `--allowed-host NAME`)",
                        self.shown()
                    ),
                ));
            }
        }
        None
    }

    /// Whether `origin` (`scheme://host[:port]`, as `Origin` sends it, or a `Referer`
    /// URL) is this server.
    fn origin_allowed(&self, origin: &str) -> bool {
        let Some((scheme, rest)) = origin.split_once("://") else {
            return false;
        };
        let default = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        parse_authority(authority).is_some_and(|(n, p)| self.allows(&n, p.unwrap_or(default)))
    }

    /// A state-changing request must come from no other site: `Sec-Fetch-Site` (sent by
    /// current browsers), else `Origin`, else `Referer`, must say this server. A request
    /// with none of them is a non-browser client (curl, scripts) and passes; but one to
    /// the API carrying cookies is a browser's, and must carry `Origin`.
    fn check_origin(&self, req: &Request) -> Option<Refusal> {
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return None;
        }
        let h = req.headers();
        let text = |n: HeaderName| h.get(n).map(|v| v.to_str().unwrap_or("(not text)"));
        let refuse = |why: String| {
            Some(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("cross-site request refused: {why}"),
            ))
        };
        if let Some(site) = text(HeaderName::from_static("sec-fetch-site"))
            && (site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site"))
        {
            return refuse(format!(
                "it comes from another site (Sec-Fetch-Site: {site})"
            ));
        }
        if let Some(origin) = text(header::ORIGIN) {
            if !self.origin_allowed(origin) {
                return refuse(format!(
                    "Origin `{}` is not this server",
                    crossomics_limits::excerpt_str(origin, 80)
                ));
            }
            return None;
        }
        if let Some(referer) = text(header::REFERER) {
            if !self.origin_allowed(referer) {
                return refuse("its Referer is not this server".into());
            }
            return None;
        }
        if req.uri().path().starts_with("/api/") && h.contains_key(header::COOKIE) {
            return refuse(
                "a request carrying cookies (a browser's) must carry an Origin header".into(),
            );
        }
        None
    }

    fn mac(&self, nonce: &str) -> Hmac<sha2::Sha256> {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.secret)
            .expect("HMAC takes a key of any length");
        mac.update(b"crossomics csrf\0");
        mac.update(nonce.as_bytes());
        mac
    }

    /// The form's token for the cookie's nonce: HMAC-SHA256 under this server's secret.
    pub(super) fn token(&self, nonce: &str) -> String {
        hex(&self.mac(nonce).finalize().into_bytes())
    }

    pub(super) fn token_ok(&self, nonce: &str, token: &str) -> bool {
        unhex(token).is_some_and(|t| self.mac(nonce).verify_slice(&t).is_ok())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The CSRF nonce of the request's cookie, when it has a well-formed one.
pub(super) fn cookie_nonce(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == CSRF_COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| jobs::valid_id(v))
}

pub(super) fn csrf_refused() -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "the form's security token is missing or does not match: reload the start page and submit again",
    )
}

/// Refuses foreign hosts and cross-site state changes, and puts the security headers on
/// every answer (refusals included).
pub(super) async fn gatekeeper(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let refusal = s
        .gate
        .check_host(&req)
        .or_else(|| s.gate.check_origin(&req));
    let mut resp = match refusal {
        Some(r) if api => r.json(),
        Some(r) => r.html(),
        None => next.run(req).await,
    };
    let h = resp.headers_mut();
    for (k, v) in SECURITY_HEADERS {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_parse_as_browsers_send_them() {
        let p = |s: &str| parse_authority(s);
        assert_eq!(p("LocalHost:8080"), Some(("localhost".into(), Some(8080))));
        assert_eq!(p("example.org."), Some(("example.org".into(), None)));
        assert_eq!(p("[::1]:9"), Some(("[::1]".into(), Some(9))));
        assert_eq!(p("[::1]"), Some(("[::1]".into(), None)));
        for bad in ["", "a b", "x:y", "a@b:1", "::1", "[::1]x", "h:99999", "a/b"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_gate_knows_its_names_and_origins() {
        let g = Gate::new(
            "127.0.0.1:8080".parse().unwrap(),
            &["portal.example.org".into(), "other:81".into()],
        )
        .unwrap();
        assert!(g.allows("localhost", 8080) && g.allows("[::1]", 8080));
        assert!(!g.allows("localhost", 8081) && !g.allows("evil.example", 8080));
        assert!(g.allows("portal.example.org", 443) && g.allows("other", 81));
        assert!(!g.allows("other", 80));
        assert!(g.origin_allowed("http://127.0.0.1:8080"));
        assert!(g.origin_allowed("https://portal.example.org"));
        assert!(g.origin_allowed("http://localhost:8080/jobs/x?y"));
        for bad in [
            "null",
            "http://evil.example",
            "http://localhost:8081",
            "file:///etc",
            "http://localhost:8080@evil.example",
        ] {
            assert!(!g.origin_allowed(bad), "{bad}");
        }
        assert!(Gate::new("127.0.0.1:1".parse().unwrap(), &["a b".into()]).is_err());
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_nonce_and_server() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (a, b) = (Gate::new(addr, &[]).unwrap(), Gate::new(addr, &[]).unwrap());
        let nonce = jobs::new_id();
        let t = a.token(&nonce);
        assert_eq!(t.len(), 64);
        assert!(a.token_ok(&nonce, &t));
        assert!(!a.token_ok(&jobs::new_id(), &t));
        assert!(!b.token_ok(&nonce, &t));
        assert!(!a.token_ok(&nonce, "") && !a.token_ok(&nonce, "zz"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {CSRF_COOKIE}={nonce}")).unwrap(),
        );
        assert_eq!(cookie_nonce(&h), Some(nonce));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("crossomics_csrf=../x"),
        );
        assert_eq!(cookie_nonce(&h), None);
    }
}
