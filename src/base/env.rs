//! The environment variables bake reads, all of them, read in this one place when the command
//! line starts; everything below takes the values as arguments. (`APT_CONFIG` and the proxy
//! settings reach the `apt-get` bake runs without bake reading them; `TMPDIR` chooses where
//! temporary folders go.)

use std::ffi::OsString;
use std::path::PathBuf;

/// What the environment says, as bake uses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `SOURCE_DATE_EPOCH`: the image epoch when the recipe sets none (checked where it is used,
    /// so a bad value is an error only for a recipe that needs it).
    pub source_date_epoch: Option<String>,
    /// `BAKE_NO_CACHE=1`: build for real even when the build cache has the outputs.
    pub no_cache: bool,
    /// `BAKE_KERNEL`: the kernel `bake test` boots when neither `--kernel` nor the recipe names
    /// one.
    pub kernel: Option<PathBuf>,
    /// bake's cache folder: `$XDG_CACHE_HOME/bake` (when absolute), else `$HOME/.cache/bake`.
    pub cache_dir: Option<PathBuf>,
    /// `BAKE_INPUTS`: a folder `bake vendor` wrote, where pinned inputs are looked for first.
    pub inputs: Option<PathBuf>,
    /// `BAKE_SNAPSHOT_MIRROR`: a snapshot archive (`https://snapshot.debian.org/archive`) that
    /// keeps packages apt no longer offers.
    pub snapshot_mirror: Option<String>,
    /// docker's `config.json`, where registry credentials are: `$DOCKER_CONFIG/config.json`,
    /// else `$HOME/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
}

impl Environment {
    /// Reads the process's environment.
    pub fn from_process() -> Environment {
        Environment::from_vars(|name| std::env::var_os(name))
    }

    /// The environment `var` gives (a test can pass its own).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Environment {
        let xdg = var("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
        let cache = xdg.or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache")));
        Environment {
            source_date_epoch: var("SOURCE_DATE_EPOCH").map(|v| v.to_string_lossy().into_owned()),
            no_cache: var("BAKE_NO_CACHE").is_some_and(|v| v == "1"),
            kernel: var("BAKE_KERNEL").map(PathBuf::from),
            cache_dir: cache.map(|c| c.join("bake")),
            inputs: var("BAKE_INPUTS").filter(|v| !v.is_empty()).map(PathBuf::from),
            docker_config: var("DOCKER_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".docker")))
                .map(|d| d.join("config.json")),
            snapshot_mirror: var("BAKE_SNAPSHOT_MIRROR")
                .map(|v| v.to_string_lossy().into_owned())
                .filter(|v| !v.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        let vars: Vec<(String, OsString)> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        Environment::from_vars(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn the_cache_is_under_xdg_cache_home_when_absolute_else_home() {
        assert_eq!(env(&[("HOME", "/h")]).cache_dir, Some(PathBuf::from("/h/.cache/bake")));
        assert_eq!(env(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]).cache_dir, Some(PathBuf::from("/x/bake")));
        assert_eq!(env(&[("HOME", "/h"), ("XDG_CACHE_HOME", "rel")]).cache_dir, Some(PathBuf::from("/h/.cache/bake")));
        assert_eq!(env(&[]).cache_dir, None);
    }

    #[test]
    fn only_bake_no_cache_1_turns_the_cache_off() {
        assert!(env(&[("BAKE_NO_CACHE", "1")]).no_cache);
        assert!(!env(&[("BAKE_NO_CACHE", "0")]).no_cache);
        assert!(!env(&[]).no_cache);
    }
}
