//! The ground floor: what every other part of bake uses, knowing nothing of recipes or formats.
//! [`error`] (the one error type and its exit statuses), [`file`](mod@file) (files put in place whole), [`hash`] (digests and hashing I/O),
//! [`http`] (HTTPS with the system's roots), [`path`] (paths inside an image), [`interrupt`] (Ctrl-C and SIGTERM), [`progress`] (events,
//! never printing), [`process`] (child processes), [`env`](mod@env) (the environment, read in one
//! place), [`json`] (JSON as bake writes it), [`memory`] (the heap), [`time`] (calendar dates) and [`suggest`] (near names for messages).

pub mod env;
pub mod error;
pub mod file;
pub mod hash;
pub mod http;
pub mod interrupt;
pub mod json;
pub mod memory;
pub mod path;
pub mod process;
pub mod progress;
pub mod suggest;
pub mod time;
