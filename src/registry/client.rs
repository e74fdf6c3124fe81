//! The OCI distribution protocol's pull and push, as far as bake uses it: blobs (HEAD, a
//! monolithic upload: POST then PUT), manifests (GET, PUT). Written on `ureq` (blocking, rustls):
//! the few requests are simpler to write than to adapt an async client's, and every body is
//! streamed, never held.

use std::io::Read;
use std::time::Duration;

use super::credentials::Credentials;
use super::reference::Reference;
use crate::base::error::{Error, Result};

/// The OCI image manifest media type: distribution 2.8 answers 404 unless `Accept` names it.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The most bytes of a manifest read into memory.
const MAX_MANIFEST: u64 = 4 << 20;

/// A repository on a registry.
pub struct Client {
    agent: ureq::Agent,
    /// `http://HOST:PORT/v2/REPO`.
    base: String,
    registry: String,
    credentials: Option<Credentials>,
}

impl Client {
    /// Plain HTTP for a loopback registry or with `plain_http`, HTTPS otherwise; `credentials`
    /// go with every request (basic auth).
    pub fn new(reference: &Reference, plain_http: bool, credentials: Option<Credentials>) -> Client {
        let scheme = if plain_http || reference.is_loopback() { "http" } else { "https" };
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(30)))
                .build(),
        );
        Client {
            agent,
            base: format!("{scheme}://{}/v2/{}", reference.registry, reference.repository),
            registry: reference.registry.clone(),
            credentials,
        }
    }

    /// `request` with the credentials, if any.
    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.credentials {
            Some(c) => request.header("Authorization", c.basic()),
            None => request,
        }
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::failure(format!("registry `{}`: {what}: {e}", self.registry))
    }

    /// The error for an answer other than the ones expected.
    fn status(&self, what: &str, response: &mut ureq::http::Response<ureq::Body>) -> Error {
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
        let mut response = self
            .auth(self.agent.head(format!("{}/blobs/{digest}", self.base)))
            .call()
            .map_err(|e| self.failed(&what, e))?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status(&what, &mut response)),
        }
    }

    /// Uploads `size` bytes from `contents` as the blob `digest`, in one request.
    pub fn put_blob(&self, digest: &str, size: u64, contents: &mut dyn Read) -> Result<()> {
        let what = format!("upload blob {digest}");
        let mut response = self
            .auth(self.agent.post(format!("{}/blobs/uploads/", self.base)))
            .send_empty()
            .map_err(|e| self.failed(&what, e))?;
        if response.status() != 202 {
            return Err(self.status(&what, &mut response));
        }
        let location = response
            .headers()
            .get("Location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| self.failed(&what, "no `Location` for the upload"))?
            .to_string();
        let url = self.absolute(&location);
        let separator = if url.contains('?') { '&' } else { '?' };
        let mut response = self
            .auth(self.agent.put(format!("{url}{separator}digest={digest}")))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", size.to_string())
            .send(ureq::SendBody::from_reader(&mut contents.take(size)))
            .map_err(|e| self.failed(&what, e))?;
        if response.status() != 201 {
            return Err(self.status(&what, &mut response));
        }
        Ok(())
    }

    /// Stores `manifest` under `target` (a tag or its digest).
    pub fn put_manifest(&self, target: &str, manifest: &[u8]) -> Result<()> {
        let what = format!("store the manifest as `{target}`");
        let mut response = self
            .auth(self.agent.put(format!("{}/manifests/{target}", self.base)))
            .header("Content-Type", MANIFEST_TYPE)
            .send(manifest)
            .map_err(|e| self.failed(&what, e))?;
        if response.status() != 201 {
            return Err(self.status(&what, &mut response));
        }
        Ok(())
    }

    /// The manifest at `target` (a tag or a digest), as the registry sent it; `None` when the
    /// registry has none there.
    pub fn get_manifest(&self, target: &str) -> Result<Option<Vec<u8>>> {
        let what = format!("fetch the manifest `{target}`");
        let mut response = self
            .auth(self.agent.get(format!("{}/manifests/{target}", self.base)))
            .header("Accept", MANIFEST_TYPE)
            .call()
            .map_err(|e| self.failed(&what, e))?;
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

    /// The blob `digest`, as a stream (checked by the caller as it reads).
    pub fn get_blob(&self, digest: &str) -> Result<impl Read + use<>> {
        let what = format!("fetch blob {digest}");
        let mut response = self
            .auth(self.agent.get(format!("{}/blobs/{digest}", self.base)))
            .call()
            .map_err(|e| self.failed(&what, e))?;
        if response.status() != 200 {
            return Err(self.status(&what, &mut response));
        }
        Ok(response.into_body().into_reader())
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
