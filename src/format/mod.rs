//! On-disk formats.

pub mod compress;
pub mod cpio;
pub mod erofs;
pub mod gpt;
