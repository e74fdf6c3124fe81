//! bake: a minimal VM image baker whose images are bit-for-bit reproducible.
//!
//! The crate is a pipeline, one folder per layer, each using only the layers before it (see
//! `docs/ARCHITECTURE.md`):
//!
//! [`base`] (errors, digests, paths, signals, progress events, the environment) ->
//! [`format`](mod@format) (cpio, the compressors, EROFS, GPT: bytes on disk, read and written) ->
//! [`recipe`], [`lockfile`] and [`debian`] (what the user and the distribution wrote) ->
//! [`source`] (reading inputs: folders, archives, packages, kernels) ->
//! [`plan`] (every entry and bit of metadata decided) ->
//! [`output`] (the table of outputs, written and staged atomically; the build) ->
//! [`check`] (reading images back: inspect, diff, verify) ->
//! [`vm`] (booting them under QEMU) ->
//! [`commands`] -> [`cli`] and [`ui`].

pub mod base;
pub mod check;
pub mod cli;
pub mod commands;
pub mod debian;
pub mod format;
pub mod lockfile;
pub mod output;
pub mod plan;
pub mod recipe;
pub mod registry;
pub mod source;
pub mod ui;
pub mod vm;
