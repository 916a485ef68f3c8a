//! The HTTP server nginx talks to.

pub mod pages;
