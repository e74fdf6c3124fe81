//! bake: a minimal VM image baker whose images are bit-for-bit reproducible.
//!
//! The pipeline reads top to bottom: [`recipe`] (TOML as written) -> [`plan`] (every entry and
//! bit of metadata decided, built with [`tree`] from the [`source`] readers) -> writers
//! ([`initramfs`] over [`cpio`], wrapped in [`compress`]) -> [`output`] (staged, atomically
//! renamed) with a [`manifest`]. [`build`] runs it; [`boot_test`] boots what was built under
//! [`qemu`] and judges the [`transcript`]; [`cli`] is the command line.

pub mod base;
pub mod check;
pub mod cli;
pub mod debian;
pub mod format;
pub mod lockfile;
pub mod output;
pub mod plan;
pub mod recipe;
pub mod source;
pub mod ui;
pub mod vm;
