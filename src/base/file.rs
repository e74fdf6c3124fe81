//! Files that appear whole or not at all: written under a temporary name in the folder they
//! belong in, then renamed into place. Such a file is readable by everyone (0644) once in place,
//! as a build's outputs, a lock file, a vendored folder and a pulled image are meant to be
//! shared and committed; the temporary file's own 0600 must not reach them.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::NamedTempFile;

use super::error::{IoContext, Result};

/// A new, empty file in `dir` (named `PREFIX…`), mode 0644, removed unless it is persisted.
pub fn staged_in(dir: &Path, prefix: &str) -> Result<NamedTempFile> {
    let file = tempfile::Builder::new().prefix(prefix).tempfile_in(dir).writing(dir)?;
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).writing(file.path())?;
    Ok(file)
}

/// Renames `staged` to `path`, replacing what is there.
pub fn put_in_place(staged: NamedTempFile, path: &Path) -> Result<()> {
    staged.persist(path).map_err(|e| e.error).writing(path)?;
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all (mode 0644).
pub fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut staged = staged_in(dir, ".bake-")?;
    staged.write_all(bytes).writing(path)?;
    put_in_place(staged, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_is_whole_and_readable_by_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "old").unwrap();
        replace(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }
}
