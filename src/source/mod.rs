//! Readers that lay one input into the image [`Tree`](crate::plan::tree::Tree): a host directory, a
//! tar archive, or the data of a Debian package. Each reads its input as a stream, in its own
//! order, and never unpacks anything onto the host.

pub mod apt;
pub mod content;
pub mod deb;
pub mod digest_cache;
pub mod dir;
pub mod kernel;
pub mod packages;
pub mod tar;
