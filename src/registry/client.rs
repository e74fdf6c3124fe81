//! The OCI distribution protocol's pull and push, as far as bake uses it: blobs (HEAD; uploads
//! in one request or, above [`CHUNK`] bytes, in chunks that resume where the registry says the
//! upload stands after a dropped connection; GET, resumed with `Range`), manifests (GET, PUT),
//! with basic auth or the bearer-token exchange, and retries with backoff on 429, 5xx and
//! dropped connections.
//!
//! Written on `ureq` (blocking, rustls): the requests are few and simple, every body is
//! streamed, never held, and the retry and resume rules (which requests may be sent again, and
//! from which byte) are the protocol's own, which no generic client knows.

use std::cell::RefCell;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::credentials::Credentials;
use super::reference::Reference;
use crate::base::error::{Error, Result};
use crate::base::progress::{Event, Reporter};

/// The OCI image manifest media type: distribution 2.8 answers 404 unless `Accept` names it.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The most bytes of a manifest read into memory.
const MAX_MANIFEST: u64 = 4 << 20;
/// Blobs larger than this go up in chunks of this size (`PATCH`), so a dropped connection
/// costs at most one chunk where the registry keeps what arrived.
pub const CHUNK: u64 = 16 << 20;
/// How often a request is tried again after a dropped connection, 429 or 5xx; the waits
/// between tries double from [`FIRST_WAIT`], or are what `Retry-After` asks (at most
/// [`MAX_WAIT`]).
const RETRIES: u32 = 4;
const FIRST_WAIT: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(30);

/// What the client does in a repository: it asks a token service for exactly this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actions {
    Pull,
    Push,
}

/// Where a blob's bytes come from: they may be read more than once (a retry, a resume).
#[derive(Clone, Copy)]
pub enum Blob<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

impl Blob<'_> {
    /// `len` bytes from `offset`, as a request body.
    fn body(&self, offset: u64, len: u64) -> std::io::Result<ureq::SendBody<'static>> {
        Ok(match self {
            Blob::Bytes(bytes) => {
                let part = bytes[offset as usize..(offset + len) as usize].to_vec();
                ureq::SendBody::from_owned_reader(std::io::Cursor::new(part))
            }
            Blob::File(path) => {
                let mut file = std::fs::File::open(path)?;
                file.seek(SeekFrom::Start(offset))?;
                ureq::SendBody::from_owned_reader(std::io::BufReader::with_capacity(1 << 20, file).take(len))
            }
        })
    }
}

/// One request, as often as it has to be sent.
struct Request<'a> {
    method: &'static str,
    url: String,
    headers: Vec<(&'static str, String)>,
    /// The blob, offset and length of a body.
    body: Option<(Blob<'a>, u64, u64)>,
}

impl<'a> Request<'a> {
    fn new(method: &'static str, url: String) -> Request<'a> {
        Request { method, url, headers: Vec::new(), body: None }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, blob: Blob<'a>, offset: u64, len: u64) -> Self {
        self.body = Some((blob, offset, len));
        self.header("Content-Length", len.to_string())
    }
}

type Response = ureq::http::Response<ureq::Body>;

/// Why a request got no answer.
enum Failure {
    /// The connection: worth going on from where the transfer stands.
    Transport(ureq::Error),
    /// Anything else (the token service refused): the end.
    Fatal(Error),
}

/// A repository on a registry.
pub struct Client<'r> {
    agent: ureq::Agent,
    /// `http://HOST:PORT/v2/REPO`.
    base: String,
    registry: String,
    repository: String,
    actions: Actions,
    credentials: Option<Credentials>,
    /// The bearer token, once the registry asked for one.
    token: RefCell<Option<String>>,
    reporter: &'r dyn Reporter,
}

impl<'r> Client<'r> {
    /// Plain HTTP for a loopback registry or with `plain_http`, HTTPS otherwise. `credentials`
    /// go as basic auth, or to the token service when the registry asks for a bearer token.
    pub fn new(
        reference: &Reference,
        plain_http: bool,
        actions: Actions,
        credentials: Option<Credentials>,
        reporter: &'r dyn Reporter,
    ) -> Client<'r> {
        let scheme = if plain_http || reference.is_loopback() { "http" } else { "https" };
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .tls_config(crate::base::http::tls())
                .timeout_connect(Some(Duration::from_secs(30)))
                // A registry that stops answering mid-body is a dropped connection.
                .timeout_recv_body(Some(Duration::from_secs(300)))
                .timeout_recv_response(Some(Duration::from_secs(300)))
                .build(),
        );
        Client {
            agent,
            base: format!("{scheme}://{}/v2/{}", reference.registry, reference.repository),
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            actions,
            credentials,
            token: RefCell::new(None),
            reporter,
        }
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::failure(format!("registry `{}`: {what}: {e}", self.registry))
    }

    /// Sends `request` once, with the token or the credentials.
    fn once(&self, request: &Request<'_>) -> std::result::Result<Response, ureq::Error> {
        let mut builder = ureq::http::Request::builder().method(request.method).uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(token) = self.token.borrow().as_ref() {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        } else if let Some(c) = &self.credentials {
            builder = builder.header("Authorization", c.basic());
        }
        let body = match request.body {
            Some((blob, offset, len)) => blob.body(offset, len).map_err(ureq::Error::Io)?,
            None => ureq::SendBody::none(),
        };
        self.agent.run(builder.body(body)?)
    }

    /// Sends `request`: once more with a bearer token when the registry asks for one, and,
    /// when `retry`, again after a dropped connection, 429 or 5xx, waiting longer each time.
    /// Any other answer is the caller's to judge.
    fn send(&self, what: &str, request: &Request<'_>, retry: bool) -> Result<Response> {
        self.try_send(what, request, retry).map_err(|failure| match failure {
            Failure::Transport(e) if retry => self.failed(what, format!("{e} (gave up after {} tries)", RETRIES + 1)),
            Failure::Transport(e) => self.failed(what, e),
            Failure::Fatal(e) => e,
        })
    }

    /// [`Client::send`], telling a transport failure (which a resumable transfer goes on from)
    /// from a fatal one.
    fn try_send(&self, what: &str, request: &Request<'_>, retry: bool) -> std::result::Result<Response, Failure> {
        let mut tries = 0;
        let mut authorized = false;
        loop {
            let wait = match self.once(request) {
                Ok(response) if response.status() == 401 && !authorized => {
                    let Some(challenge) = bearer_challenge(&response) else { return Ok(response) };
                    self.fetch_token(what, &challenge).map_err(Failure::Fatal)?;
                    authorized = true;
                    continue;
                }
                Ok(response) if retry && tries < RETRIES && retryable(response.status().as_u16()) => {
                    let asked = response
                        .headers()
                        .get("Retry-After")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    (format!("HTTP {}", response.status().as_u16()), asked)
                }
                Ok(response) => return Ok(response),
                Err(e) if retry && tries < RETRIES && transient(&e) => (e.to_string(), None),
                Err(e) => return Err(Failure::Transport(e)),
            };
            let delay = wait.1.unwrap_or(FIRST_WAIT * 2u32.pow(tries)).min(MAX_WAIT);
            tries += 1;
            self.reporter.report(Event::Warning(format!(
                "registry `{}`: {what}: {}; trying again in {:.1} s ({tries} of {RETRIES})",
                self.registry,
                wait.0,
                delay.as_secs_f64()
            )));
            std::thread::sleep(delay);
        }
    }

    /// Asks the token service of a `WWW-Authenticate: Bearer` challenge for a token for this
    /// repository (`pull`, or `pull,push`), with the credentials when there are any.
    fn fetch_token(&self, what: &str, challenge: &Challenge) -> Result<()> {
        let actions = match self.actions {
            Actions::Pull => "pull",
            Actions::Push => "pull,push",
        };
        let mut request = self.agent.get(&challenge.realm);
        if let Some(service) = &challenge.service {
            request = request.query("service", service);
        }
        request = request.query("scope", format!("repository:{}:{actions}", self.repository));
        if let Some(c) = &self.credentials {
            request = request.query("account", &c.username).header("Authorization", c.basic());
        }
        let mut response =
            request.call().map_err(|e| self.failed(what, format!("token service `{}`: {e}", challenge.realm)))?;
        if response.status() != 200 {
            return Err(self.status(what, &mut response));
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let mut text = Vec::new();
        let read = response.body_mut().as_reader().take(1 << 20).read_to_end(&mut text);
        let token: Token = read
            .map_err(|e| e.to_string())
            .and_then(|_| serde_json::from_slice(&text).map_err(|e| e.to_string()))
            .map_err(|e| self.failed(what, format!("token service `{}`: {e}", challenge.realm)))?;
        let token = token.token.or(token.access_token).filter(|t| !t.is_empty()).ok_or_else(|| {
            self.failed(what, format!("token service `{}` answered without a token", challenge.realm))
        })?;
        *self.token.borrow_mut() = Some(token);
        Ok(())
    }

    /// The error for an answer other than the ones expected.
    fn status(&self, what: &str, response: &mut Response) -> Error {
        let status = response.status();
        let mut body = String::new();
        let _ = response.body_mut().as_reader().take(2048).read_to_string(&mut body);
        if status == 401 || status == 403 {
            return Error::input(match &self.credentials {
                None => format!(
                    "registry `{}` refused to {what} without credentials (HTTP {status}): add them to \
                     $DOCKER_CONFIG/config.json or ~/.docker/config.json (`docker login {}` writes them)",
                    self.registry, self.registry
                ),
                Some(c) => {
                    format!("registry `{}` refused to {what} for user `{}` (HTTP {status})", self.registry, c.username)
                }
            });
        }
        self.failed(what, format!("HTTP {status} {}", body.trim()))
    }

    /// Whether the repository has the blob `digest`.
    pub fn has_blob(&self, digest: &str) -> Result<bool> {
        let what = format!("look for blob {digest}");
        let mut response = self.send(&what, &Request::new("HEAD", format!("{}/blobs/{digest}", self.base)), true)?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status(&what, &mut response)),
        }
    }

    /// Uploads `blob` (`size` bytes) as `digest`: in one request up to [`CHUNK`] bytes, in
    /// chunks above. After a dropped connection or a 5xx the upload goes on from where the
    /// registry says it stands; when the registry has dropped the upload, it starts again.
    /// The registry checks the digest of the whole.
    pub fn put_blob(&self, digest: &str, size: u64, blob: Blob<'_>) -> Result<()> {
        let what = format!("upload blob {digest}");
        let mut failures = 0;
        'upload: loop {
            let mut location = self.start_upload(&what)?;
            let mut offset = 0;
            if size > CHUNK {
                while offset < size {
                    let len = CHUNK.min(size - offset);
                    let patch = Request::new("PATCH", location.clone())
                        .body(blob, offset, len)
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", format!("{offset}-{}", offset + len - 1));
                    match self.try_send(&what, &patch, false) {
                        Ok(response) if response.status() == 202 => {
                            location = self.location(&what, &response)?;
                            offset = uploaded(&response).unwrap_or(offset + len);
                            continue;
                        }
                        Ok(mut response) if !retryable(response.status().as_u16()) => {
                            return Err(self.status(&what, &mut response));
                        }
                        Ok(response) => self.wait_after(&what, &mut failures, format!("HTTP {}", response.status()))?,
                        Err(Failure::Transport(e)) => self.wait_after(&what, &mut failures, e)?,
                        Err(Failure::Fatal(e)) => return Err(e),
                    }
                    // Where does the upload stand?
                    match self.try_send(&what, &Request::new("GET", location.clone()), false) {
                        Ok(response) if response.status() == 204 => {
                            offset = uploaded(&response).unwrap_or(0).min(size);
                            location = self.location(&what, &response).unwrap_or(location);
                            self.reporter.report(Event::Detail(format!(
                                "{digest}: the registry has {offset} of {size} bytes; going on from there"
                            )));
                        }
                        _ => continue 'upload,
                    }
                }
            }
            let mut put = Request::new("PUT", with_query(&location, "digest", digest));
            put = if offset < size {
                put.body(blob, offset, size - offset).header("Content-Type", "application/octet-stream")
            } else {
                put.header("Content-Length", "0")
            };
            match self.try_send(&what, &put, false) {
                Ok(response) if response.status() == 201 => return Ok(()),
                Ok(mut response) if !retryable(response.status().as_u16()) => {
                    return Err(self.status(&what, &mut response));
                }
                Ok(response) => self.wait_after(&what, &mut failures, format!("HTTP {}", response.status()))?,
                Err(Failure::Transport(e)) => self.wait_after(&what, &mut failures, e)?,
                Err(Failure::Fatal(e)) => return Err(e),
            }
            // The closing request failed: the blob may have arrived all the same.
            let head = Request::new("HEAD", format!("{}/blobs/{digest}", self.base));
            if self.try_send(&what, &head, false).is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
        }
    }

    /// Counts one more failed request of a transfer that goes on where it stopped (an upload,
    /// a blob read), and waits before the next; an error after 4 more tries.
    pub fn wait_after(&self, what: &str, failures: &mut u32, e: impl std::fmt::Display) -> Result<()> {
        if *failures >= RETRIES {
            return Err(self.failed(what, format!("{e}; gave up after {RETRIES} tries")));
        }
        let delay = (FIRST_WAIT * 2u32.pow(*failures)).min(MAX_WAIT);
        *failures += 1;
        self.reporter.report(Event::Warning(format!(
            "registry `{}`: {what}: {e}; going on in {:.1} s ({failures} of {RETRIES})",
            self.registry,
            delay.as_secs_f64()
        )));
        std::thread::sleep(delay);
        Ok(())
    }

    /// Opens an upload: its URL.
    fn start_upload(&self, what: &str) -> Result<String> {
        let mut response = self.send(what, &Request::new("POST", format!("{}/blobs/uploads/", self.base)), true)?;
        if response.status() != 202 {
            return Err(self.status(what, &mut response));
        }
        self.location(what, &response)
    }

    /// The response's `Location`, as a full URL.
    fn location(&self, what: &str, response: &Response) -> Result<String> {
        let location = response
            .headers()
            .get("Location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| self.failed(what, "no `Location` for the upload"))?;
        Ok(self.absolute(location))
    }

    /// Stores `manifest` under `target` (a tag or its digest).
    pub fn put_manifest(&self, target: &str, manifest: &[u8]) -> Result<()> {
        let what = format!("store the manifest as `{target}`");
        let request = Request::new("PUT", format!("{}/manifests/{target}", self.base))
            .body(Blob::Bytes(manifest), 0, manifest.len() as u64)
            .header("Content-Type", MANIFEST_TYPE);
        let mut response = self.send(&what, &request, true)?;
        if response.status() != 201 {
            return Err(self.status(&what, &mut response));
        }
        Ok(())
    }

    /// The manifest at `target` (a tag or a digest), as the registry sent it; `None` when the
    /// registry has none there.
    pub fn get_manifest(&self, target: &str) -> Result<Option<Vec<u8>>> {
        let what = format!("fetch the manifest `{target}`");
        let request = Request::new("GET", format!("{}/manifests/{target}", self.base)).header("Accept", MANIFEST_TYPE);
        let mut response = self.send(&what, &request, true)?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status(&what, &mut response)),
        }
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.failed(&what, e))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(self.failed(&what, format!("a manifest of more than {MAX_MANIFEST} bytes")));
        }
        Ok(Some(bytes))
    }

    /// The blob `digest` from byte `from` on, as a stream (checked by the caller as it reads),
    /// and whether the registry honoured `from` (otherwise the stream starts at byte 0); `None`
    /// when the repository has no such blob.
    pub fn get_blob(&self, digest: &str, from: u64) -> Result<Option<(impl Read + use<>, bool)>> {
        let what = format!("fetch blob {digest}");
        let mut request = Request::new("GET", format!("{}/blobs/{digest}", self.base));
        if from > 0 {
            request = request.header("Range", format!("bytes={from}-"));
        }
        let mut response = self.send(&what, &request, true)?;
        let resumed = match response.status().as_u16() {
            200 => false,
            206 => true,
            404 => return Ok(None),
            _ => return Err(self.status(&what, &mut response)),
        };
        Ok(Some((response.into_body().into_reader(), resumed)))
    }

    /// `location` (from a `Location` header) as a full URL.
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            return location.to_string();
        }
        // The origin: scheme and host of `base`.
        let after_scheme = self.base.find("://").map_or(0, |i| i + 3);
        let origin_end = self.base[after_scheme..].find('/').map_or(self.base.len(), |i| after_scheme + i);
        format!("{}{location}", &self.base[..origin_end])
    }
}

/// Whether an HTTP status is worth another try: too many requests, or the server's trouble.
fn retryable(status: u16) -> bool {
    status == 429 || status == 408 || (500..600).contains(&status) && status != 501
}

/// Whether a transport error is a dropped or refused connection or a timeout (worth another
/// try), not a bad URL or a TLS refusal.
fn transient(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::Protocol(_))
}

/// How many bytes an upload holds, from its `Range: 0-LAST` (distribution writes `0-0` for an
/// empty upload too).
fn uploaded(response: &Response) -> Option<u64> {
    let range = response.headers().get("Range")?.to_str().ok()?;
    let last: u64 = range.trim().trim_start_matches("bytes=").split_once('-')?.1.parse().ok()?;
    Some(if last == 0 { 0 } else { last + 1 })
}

/// `url` with `key=value` added to its query.
fn with_query(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{key}={value}")
}

/// A `WWW-Authenticate: Bearer realm="...",service="..."` challenge.
#[derive(Debug, PartialEq, Eq)]
struct Challenge {
    realm: String,
    service: Option<String>,
}

fn bearer_challenge(response: &Response) -> Option<Challenge> {
    response.headers().get_all("WWW-Authenticate").iter().filter_map(|v| v.to_str().ok()).find_map(parse_challenge)
}

/// Parses one `WWW-Authenticate` value, when it is a bearer challenge with a realm.
fn parse_challenge(value: &str) -> Option<Challenge> {
    let (scheme, params) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let (mut realm, mut service) = (None, None);
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').map_or((after, ""), |(v, a)| (v, a)),
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value.to_string()),
            "service" => service = Some(value.to_string()),
            _ => {}
        }
        rest = after.trim_start_matches([',', ' ']);
    }
    Some(Challenge { realm: realm?, service })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_read_as_docker_hub_and_distribution_write_them() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#
            ),
            Some(Challenge {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm="http://127.0.0.1:5/token", scope="a:b:pull,push""#),
            Some(Challenge { realm: "http://127.0.0.1:5/token".into(), service: None })
        );
        assert_eq!(parse_challenge(r#"Basic realm="registry""#), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn what_is_tried_again() {
        for status in [429, 500, 502, 503, 504, 408] {
            assert!(retryable(status), "{status}");
        }
        for status in [400, 401, 403, 404, 416, 501] {
            assert!(!retryable(status), "{status}");
        }
    }
}
