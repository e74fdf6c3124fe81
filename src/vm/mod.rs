//! Booting what was built: [`qemu`] runs a machine and watches its console, [`transcript`]
//! makes what the guest printed comparable and judges it, `expect` reads a recipe's `[test]`,
//! [`probe`] checks the guest's services over HTTP and [`qmp`] presses its power button, and
//! [`boot_test`] runs `bake test`'s cases.

pub mod boot_test;
mod expect;
pub mod probe;
pub mod qemu;
pub mod qmp;
pub mod transcript;
