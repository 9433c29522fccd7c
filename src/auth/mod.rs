//! Authentication: getting the bearer credential out of a request
//! ([`bearer`]) and, in later stages, verifying it into a principal.

pub mod bearer;
