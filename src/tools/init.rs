//! `tokengate init` (to be written).
