//! `tokengate token` (to be written).
