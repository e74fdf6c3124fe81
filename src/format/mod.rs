//! The on-disk formats bake writes and reads, each owning its types and split into reading and
//! writing where it does both: [`ar`] (the archive a Debian package is), [`cpio`] (the
//! initramfs), [`compress`] (the compressors around it), [`erofs`] (the read-only file system),
//! [`gpt`] (the partitioned disk), [`fat`] (the EFI system partition), [`pe`] (the unified
//! kernel image), [`verity`] (dm-verity hash trees). A format knows
//! nothing of recipes or plans: writers take the format's own input types, readers give the one
//! [`Entry`] every format shares, and [`FileType`] names what an entry is everywhere.

pub mod ar;
pub mod compress;
pub mod cpio;
pub mod entry;
pub mod erofs;
pub mod fat;
mod file_type;
pub mod gpt;
pub mod limits;
pub mod pe;
pub mod verity;

pub use entry::Entry;
pub use file_type::FileType;
