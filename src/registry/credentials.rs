//! Registry credentials as docker keeps them, read from `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`: `credHelpers` (a helper for one registry), `credsStore` (a helper
//! for all), then `auths` (`auth`, base64 of `user:password`, or `username` and `password`).
//! A helper is the program `docker-credential-NAME`, asked with `get` and the registry on its
//! standard input. Secrets never reach a message.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;

use crate::base::error::{Error, Result};

/// A user name and a password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ username: {:?}, secret: <hidden> }}", self.username)
    }
}

impl Credentials {
    /// The `Authorization` header value for basic auth.
    pub fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.secret);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

/// The credentials `config` (a docker `config.json`, if it exists) gives for `registry`
/// (`host[:port]`); `None` when it names none.
pub fn lookup(config: Option<&Path>, registry: &str) -> Result<Option<Credentials>> {
    let Some(path) = config.filter(|p| p.is_file()) else { return Ok(None) };
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::input(format!("cannot read `{}`: {e}", path.display())))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::input(format!("`{}` is not JSON: {e}", path.display())))?;
    let named = |key: &str| host_of(key) == registry;
    if let Some(helper) =
        value["credHelpers"].as_object().and_then(|h| h.iter().find(|(k, _)| named(k))).and_then(|(_, v)| v.as_str())
    {
        return helper_get(helper, registry).map(Some);
    }
    if let Some(auths) = value["auths"].as_object()
        && let Some((_, entry)) = auths.iter().find(|(k, _)| named(k))
    {
        if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
            let bad = || {
                Error::input(format!(
                    "`{}`: the `auth` of `{registry}` is not base64 of `user:password`",
                    path.display()
                ))
            };
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth).map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, secret) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials { username: username.into(), secret: secret.into() }));
        }
        if let (Some(username), Some(secret)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Ok(Some(Credentials { username: username.into(), secret: secret.into() }));
        }
    }
    if let Some(store) = value["credsStore"].as_str().filter(|s| !s.is_empty()) {
        return helper_get(store, registry).map(Some);
    }
    Ok(None)
}

/// `https://host:port/v1/` -> `host:port`, as docker matches the keys of `auths`.
fn host_of(key: &str) -> &str {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// Asks `docker-credential-HELPER get` for `registry`.
fn helper_get(helper: &str, registry: &str) -> Result<Credentials> {
    if !helper.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(Error::input(format!("credential helper `{helper}` is not a helper's name")));
    }
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::input(format!("cannot run the credential helper `{program}` for `{registry}`: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| Error::failure(format!("`{program}`: {e}")))?;
    if !out.status.success() {
        return Err(Error::input(format!("the credential helper `{program}` has no credentials for `{registry}`")));
    }
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| Error::input(format!("the credential helper `{program}` did not answer with JSON")))?;
    match (value["Username"].as_str(), value["Secret"].as_str()) {
        (Some(username), Some(secret)) => Ok(Credentials { username: username.into(), secret: secret.into() }),
        _ => Err(Error::input(format!("the credential helper `{program}` gave no `Username` and `Secret`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_are_found_by_host_in_either_form() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("bake:secret");
        std::fs::write(&config, format!(r#"{{"auths": {{"https://r.example:5000/v1/": {{"auth": "{auth}"}}, "other": {{"username": "u", "password": "p"}}}}}}"#)).unwrap();
        let found = lookup(Some(&config), "r.example:5000").unwrap().unwrap();
        assert_eq!((found.username.as_str(), found.secret.as_str()), ("bake", "secret"));
        assert_eq!(found.basic(), format!("Basic {auth}"));
        assert_eq!(lookup(Some(&config), "other").unwrap().unwrap().secret, "p");
        assert_eq!(lookup(Some(&config), "nowhere").unwrap(), None);
        assert_eq!(lookup(None, "r.example:5000").unwrap(), None);
        assert!(!format!("{found:?}").contains("secret\""), "no secret in Debug");
        std::fs::write(&config, r#"{"auths": {"r": {"auth": "%%%"}}}"#).unwrap();
        assert!(lookup(Some(&config), "r").unwrap_err().to_string().contains("not base64"));
    }
}
