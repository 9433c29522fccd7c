//! Command-line tools around the gateway, each a library function the thin
//! binary calls: writing a starter configuration (`init`), building a key
//! set from PEM keys (`jwks`), minting development tokens (`token`) and
//! development certificates (`devcert`), and making DPoP proofs
//! (`dpop_proof`). None of them is in a request's path.

pub mod devcert;
pub mod dpop_proof;
pub mod init;
pub mod jwks;
pub mod token;
