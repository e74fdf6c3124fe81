//! What Linux lets an image hold, whatever the format: device numbers and symlink targets.

use crate::base::error::{Error, Result};
use crate::base::path::PATH_MAX;

/// Linux device numbers: 12 bits of major, 20 of minor.
pub fn check_device_numbers(major: u32, minor: u32) -> Result<()> {
    if major >= 1 << 12 || minor >= 1 << 20 {
        return Err(Error::input(format!(
            "device {major}:{minor} is out of range: Linux majors are below 4096, minors below 1048576"
        )));
    }
    Ok(())
}

/// A symlink target the kernel can create: not empty, no NUL, shorter than `PATH_MAX`.
pub fn check_symlink_target(target: &[u8]) -> Result<()> {
    if target.is_empty() || target.contains(&0) {
        return Err(Error::input("a symlink target must be non-empty and without NUL"));
    }
    if target.len() >= PATH_MAX {
        return Err(Error::input(format!(
            "a symlink target of {} bytes is longer than the kernel allows",
            target.len()
        )));
    }
    Ok(())
}
