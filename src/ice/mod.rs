//! ICE (RFC 8445) as a sans-IO core: candidates and their SDP lines (RFC 8839),
//! credentials and errors.

mod candidate;
mod credentials;
mod error;

pub use candidate::{
    candidate_foundation, candidate_priority, is_valid_foundation, Candidate, CandidateKind,
    CandidateTransport, TcpType,
};
pub use credentials::{is_ice_char, IceCredentials, PWD_LEN, UFRAG_LEN};
pub use error::IceError;

#[cfg(test)]
mod tests;
