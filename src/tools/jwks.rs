//! `tokengate jwks` (to be written).
