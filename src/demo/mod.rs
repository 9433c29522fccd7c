//! `tokengate demo`: what a new user runs first. A development OAuth 2.0
//! issuer ([`issuer`]) and an echo upstream ([`echo`]) on loopback, in front
//! of which the gateway runs with `config/demo.toml`. Development only.

pub mod echo;
pub mod issuer;
