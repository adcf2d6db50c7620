//! Random secrets and the hashes they are kept as: sessions, tokens, share links and
//! sign-in forms are stored only as a BLAKE3 hash of their secret.

use crate::error::StoreError;

pub(crate) fn hash(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// 256 random bits as 64 hex digits: the secrets of sessions, share links and sign-in
/// forms.
///
/// # Errors
/// The system's random source failed.
pub fn random_hex() -> Result<String, StoreError> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random)
        .map_err(|e| StoreError::Db(sqlx::Error::Io(std::io::Error::other(e.to_string()))))?;
    Ok(hex(&random))
}
