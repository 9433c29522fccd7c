//! `tokengate demo`: what a new user runs first. A development OAuth 2.0
//! issuer ([`issuer`]) and an echo upstream ([`echo`]) on loopback, in front
//! of which the gateway runs with `config/demo.toml` ([`run`]). Development
//! only, and compiled only with the `demo` cargo feature (on by default).

pub mod echo;
pub mod issuer;
pub mod run;
