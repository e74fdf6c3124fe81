//! Images in an OCI registry: references ([`reference`](mod@reference)), the distribution protocol as bake
//! uses it ([`client`]), credentials as docker keeps them ([`credentials`]), and a build's outputs as one artifact, pushed and pulled
//! ([`artifact`]).

pub mod artifact;
pub mod client;
pub mod credentials;
pub mod reference;

pub use reference::Reference;
