//! Reading built images back, and proving a build reproducible: [`image`] reads any image
//! bake writes (and others' cpio and EROFS images) into the one entry type of the formats,
//! [`inspect`] lists it, [`diff`] explains how two differ, and [`verify`] builds a recipe twice
//! under different conditions and compares every output.

pub mod diff;
pub mod image;
pub mod inspect;
pub mod verify;
