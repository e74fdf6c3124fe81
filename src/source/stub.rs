//! systemd's EFI stub, `linuxx64.efi.stub`, read from the `.deb` that ships it
//! (`systemd-boot-efi`): the PE program a unified kernel image starts with.

use std::io::Read;
use std::path::Path;

use crate::base::error::{Error, IoContext, Result};

/// Where `systemd-boot-efi` keeps the x86-64 stub.
pub const STUB_PATH: &str = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// Debian 12's stub is 80 KiB; anything far larger is not a stub.
const MAX_STUB: u64 = 16 << 20;

/// The stub's bytes, from the package at `path`.
pub fn read_package(path: &Path) -> Result<Vec<u8>> {
    let label = path.display().to_string();
    let file = std::fs::File::open(path).reading(path)?;
    let mut stub = None;
    super::deb::with_data(std::io::BufReader::new(file), &label, |data| {
        super::tar::for_each_file(data, &label, |name, size, reader| {
            if name.trim_start_matches("./") != STUB_PATH {
                return Ok(());
            }
            if size > MAX_STUB {
                return Err(Error::input(format!("`{label}`: `/{STUB_PATH}` of {size} bytes is not plausible")));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            reader.take(size).read_to_end(&mut bytes).map_err(|e| Error::input(format!("`{label}`: {e}")))?;
            stub = Some(bytes);
            Ok(())
        })
    })?;
    stub.ok_or_else(|| {
        Error::input(format!(
            "`{label}` holds no `/{STUB_PATH}`: it is not systemd's EFI stub package (systemd-boot-efi)"
        ))
    })
}
