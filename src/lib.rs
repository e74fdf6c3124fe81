//! bake: a minimal VM image baker whose images are bit-for-bit reproducible.
//!
//! The pipeline reads top to bottom: [`recipe`] (TOML as written) -> [`plan`] (every entry and
//! bit of metadata decided, built with [`tree`] from the [`source`] readers) -> writers
//! ([`initramfs`] over [`cpio`], wrapped in [`compress`]) -> [`output`] (staged, atomically
//! renamed) with a [`manifest`]. [`build`] runs it; [`boot_test`] boots what was built under
//! [`qemu`] and judges the [`transcript`]; [`cli`] is the command line.

pub mod apt;
pub mod boot_test;
pub mod build;
pub mod cache;
pub mod child;
pub mod cli;
pub mod compress;
pub mod content;
pub mod cpio;
pub mod debian;
pub mod diff;
pub mod digest_cache;
pub mod erofs;
pub mod error;
pub mod gpt;
pub mod hash;
pub mod image;
pub mod initramfs;
pub mod inspect;
pub mod interrupt;
pub mod kernel;
pub mod lock;
pub mod manifest;
pub mod output;
pub mod packages;
pub mod path;
pub mod plan;
pub mod progress;
pub mod qemu;
pub mod recipe;
pub mod sbom;
pub mod source;
pub mod transcript;
pub mod tree;
pub mod ui;
pub mod verify;
