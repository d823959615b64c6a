//! Operator passwords (the router console's admin credential) as argon2id PHC
//! strings: hashed once by whoever writes the config, verified by the router.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("salt must be 8 to 48 bytes")]
    Salt,
    #[error("password hashing: {0}")]
    Hash(String),
    #[error("not an argon2 PHC string: {0}")]
    Format(String),
}

/// Hashes `password` with argon2id (default parameters) and `salt` (8..=48
/// random bytes chosen by the caller).
pub fn hash_password(password: &str, salt: &[u8]) -> Result<String, PasswordError> {
    if !(8..=48).contains(&salt.len()) {
        return Err(PasswordError::Salt);
    }
    let salt = SaltString::encode_b64(salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks that `stored` is a PHC string argon2 can verify against.
pub fn check_hash(stored: &str) -> Result<(), PasswordError> {
    PasswordHash::new(stored).map(|_| ()).map_err(|e| PasswordError::Format(e.to_string()))
}

/// True if `password` matches the PHC string `stored` (false for a malformed one).
pub fn verify_password(stored: &str, password: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse", b"0123456789abcdef").unwrap();
        assert!(h.starts_with("$argon2id$"));
        check_hash(&h).unwrap();
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsE"));
        assert!(!verify_password("not a hash", "correct horse"));
        assert!(check_hash("not a hash").is_err());
    }
}
