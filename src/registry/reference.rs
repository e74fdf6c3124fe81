//! Registry references as users write them: `HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]`, checked
//! by bake itself (a registry answers an upper-case repository with 404, not a name error).

use std::fmt;

use crate::base::error::{Error, Result};

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host` or `host:port`.
    pub registry: String,
    /// `team/appliance`: lower-case path components.
    pub repository: String,
    /// The tag; `latest` when neither a tag nor a digest is given.
    pub tag: Option<String>,
    /// `sha256:` and 64 hex digits.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `text`; a malformed reference is an input error saying what is wrong.
    pub fn parse(text: &str) -> Result<Reference> {
        let bad = |what: &str| {
            Error::input(format!(
                "`{text}` is not a registry reference (HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]): {what}"
            ))
        };
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest.strip_prefix("sha256:").ok_or_else(|| bad("the digest must start with `sha256:`"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(bad("the digest must be `sha256:` and 64 lower-case hex digits"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (text, None),
        };
        let (registry, path) =
            rest.split_once('/').ok_or_else(|| bad("no `/` between the registry and the repository"))?;
        if registry.is_empty() || !registry.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) {
            return Err(bad("the registry must be a host name or address, with an optional `:PORT`"));
        }
        // A `:` after the last `/` starts the tag.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        for component in repository.split('/') {
            let ok = !component.is_empty()
                && component.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && component.as_bytes()[0].is_ascii_alphanumeric()
                && component.as_bytes()[component.len() - 1].is_ascii_alphanumeric();
            if !ok {
                return Err(bad(&format!(
                    "repository component `{component}` must be lower-case letters and digits, separated by `.`, `_` or `-`"
                )));
            }
        }
        if let Some(tag) = &tag {
            let first_ok = tag.as_bytes().first().is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
            if tag.len() > 128 || !first_ok || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                return Err(bad(&format!(
                    "tag `{tag}` must be up to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
                )));
            }
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(Reference { registry: registry.to_string(), repository: repository.to_string(), tag, digest })
    }

    /// Whether the registry is on this machine (`localhost`, `127.x`, `[::1]`): plain HTTP is
    /// used for it without `--plain-http`.
    pub fn is_loopback(&self) -> bool {
        let host = self.registry.rsplit_once(':').map_or(self.registry.as_str(), |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) { h } else { self.registry.as_str() }
        });
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }

    /// What the manifest is asked for by: the digest when there is one, else the tag.
    pub fn target(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// `HOST/REPO` and the tag, without the digest: what `REF@sha256:...` is printed after.
    pub fn name(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}/{}:{tag}", self.registry, self.repository),
            None => format!("{}/{}", self.registry, self.repository),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_docker_writes_them() {
        let r = Reference::parse("127.0.0.1:5000/team/appliance").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref(), r.digest.as_deref()),
            ("127.0.0.1:5000", "team/appliance", Some("latest"), None)
        );
        assert!(r.is_loopback());
        let digest = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse(&format!("ghcr.io/me/hello:v1@{digest}")).unwrap();
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref(), r.target()),
            (Some("v1"), Some(digest.as_str()), digest.as_str())
        );
        assert!(!r.is_loopback());
        let r = Reference::parse(&format!("localhost:5000/hello@{digest}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), format!("localhost:5000/hello@{digest}"));
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        for (text, says) in [
            ("hello", "no `/`"),
            ("localhost:5000/Team/app", "`Team`"),
            ("localhost:5000/app:-x", "tag `-x`"),
            ("localhost:5000/app@sha256:12", "64 lower-case hex"),
            ("localhost:5000/app@md5:12", "`sha256:`"),
            ("localhost:5000//app", "component ``"),
            ("local host/app", "host name"),
        ] {
            let error = Reference::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
