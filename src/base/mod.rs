//! The ground floor: what every other part of bake uses and that knows nothing of images.

pub mod error;
pub mod hash;
pub mod interrupt;
pub mod path;
pub mod process;
pub mod progress;
