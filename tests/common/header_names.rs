//! Header names more than one test enumerates (no dependencies, so that
//! test crates without the other fixtures include it by `#[path]`).

/// The headers that ask a server to route or dispatch differently: the
/// gateway strips every one of them.
pub const ROUTING_OVERRIDES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
