//! `tokengate devcert` (to be written).
