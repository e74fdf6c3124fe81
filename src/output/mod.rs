//! Outputs.

pub mod build;
pub mod cache;
pub mod initramfs;
pub mod manifest;
pub mod sbom;
pub mod stage;
