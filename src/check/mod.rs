//! Reading images back.

pub mod diff;
pub mod image;
pub mod inspect;
pub mod verify;
