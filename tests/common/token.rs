//! A token service for bearer-token auth, the way Docker Hub and GHCR ask for it: a registry
//! configured with `auth: token:` answers 401 with `WWW-Authenticate: Bearer realm=...`, the
//! client asks the realm for a token, and the registry checks the token's RS256 signature
//! against a certificate it trusts. The key and the self-signed certificate come from the
//! `openssl` command line; each token is signed by it too.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Each request a token service answered: the `scope` values, and whether it came with the
/// credentials `bake:secret`.
pub type Requests = Arc<Mutex<Vec<(Vec<String>, bool)>>>;

/// A running token service and what it was asked.
pub struct TokenService {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    pub requests: Requests,
    _dir: tempfile::TempDir,
}

impl TokenService {
    /// Starts one; with `require_credentials`, a request without `bake:secret` gets 401.
    /// Returns it with the `auth:` section of a distribution configuration that trusts it.
    pub fn start(require_credentials: bool) -> (TokenService, String) {
        super::require_tool("openssl");
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        super::run_ok(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bake-test-token"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let der = super::run_ok(Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(&cert)).stdout;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let x5c = STANDARD.encode(der);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                answer(stream, &key, &x5c, require_credentials, &seen);
            }
        });
        let config = format!(
            "auth:\n  token:\n    realm: {realm}\n    service: bake-test\n    issuer: bake-test-issuer\n    rootcertbundle: {}\n",
            cert.display()
        );
        (TokenService { realm, requests, _dir: dir }, config)
    }

    /// Every scope asked for so far.
    pub fn scopes(&self) -> Vec<String> {
        self.requests.lock().unwrap().iter().flat_map(|(s, _)| s.clone()).collect()
    }
}

/// Answers one request: a token for the scopes asked, or 401.
fn answer(
    mut stream: std::net::TcpStream,
    key: &Path,
    x5c: &str,
    require_credentials: bool,
    seen: &Mutex<Vec<(Vec<String>, bool)>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut authorized = false;
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        let (name, value) = line.split_once(':').unwrap_or(("", ""));
        if name.eq_ignore_ascii_case("authorization") {
            authorized = value.trim() == format!("Basic {}", STANDARD.encode("bake:secret"));
        }
        line.clear();
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    // `scope` may repeat, and one value may hold several scopes separated by spaces: the
    // registry's own challenge for a cross-repository mount suggests two that way.
    let values: Vec<String> =
        query.split('&').filter_map(|pair| pair.strip_prefix("scope=")).map(percent_decode).collect();
    let scopes: Vec<String> = values.join(" ").split_whitespace().map(String::from).collect();
    seen.lock().unwrap().push((scopes.clone(), authorized));
    let response = if require_credentials && !authorized {
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
    } else {
        // Docker reads `token`, OAuth2 clients `access_token`: the same token in both.
        let token = jwt(key, x5c, &scopes, authorized);
        let body = format!(r#"{{"token": "{token}", "access_token": "{token}", "expires_in": 300}}"#);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = stream.write_all(response.as_bytes());
}

/// A token granting `scopes` (`repository:NAME:ACTIONS`), signed RS256 by `key`.
fn jwt(key: &Path, x5c: &str, scopes: &[String], authorized: bool) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }))
        })
        .collect();
    // Distribution 2.8 trusts the key in `x5c` when that certificate chains to its
    // `rootcertbundle`; `aud` must be a string there (an array is a malformed token).
    let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [x5c] });
    let claims = serde_json::json!({
        "iss": "bake-test-issuer", "sub": if authorized { "bake" } else { "anonymous" }, "aud": "bake-test",
        "exp": now + 300, "nbf": now - 60, "iat": now - 60, "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = super::pipe(
        "openssl",
        &["dgst", "-sha256", "-sign", &key.display().to_string()],
        signing_input.as_bytes(),
        None,
    );
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// `value` from a query string: `+` is a space, `%XX` a byte.
fn percent_decode(value: &str) -> String {
    let raw = value.as_bytes();
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let hex = raw.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (raw[i], hex) {
            (b'%', Some(hex)) => {
                bytes.push(u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap());
                i += 3;
            }
            (b'+', _) => {
                bytes.push(b' ');
                i += 1;
            }
            (b, _) => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
