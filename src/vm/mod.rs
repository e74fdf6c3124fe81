//! Booting images.

pub mod boot_test;
pub mod qemu;
pub mod transcript;
