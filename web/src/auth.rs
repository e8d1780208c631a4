//! Credentials: API tokens (random, shown once, stored as a SHA-256 hash) and console passwords (argon2).
//!
//! API tokens carry 256 bits of randomness, so a fast hash is enough to store them: nobody can guess one, and a
//! leaked table of hashes gives nothing back. Passwords are chosen by people, so they get argon2.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix of every webcare API token, so a leaked one is recognisable in a secret scanner.
pub const TOKEN_PREFIX: &str = "wct_";

/// A new API token: the prefix and 32 random bytes in hex.
pub fn new_api_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The form in which a token is stored and looked up.
pub fn hash_api_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The shortest console password, in characters.
pub const MIN_PASSWORD: usize = 8;
/// The longest, in bytes (argon2 hashes what it is given; a megabyte of password would be work for nothing).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Whether a password is long enough and not absurdly long.
pub fn password_acceptable(password: &str) -> bool {
    password.chars().count() >= MIN_PASSWORD && password.len() <= MAX_PASSWORD_BYTES
}

/// An argon2id PHC string for a password.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| format!("cannot make a salt: {e}"))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches a stored PHC string. A malformed stored hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_stably() {
        let a = new_api_token();
        let b = new_api_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64, "{a}");
        assert_eq!(hash_api_token(&a), hash_api_token(&a));
        assert_ne!(hash_api_token(&a), hash_api_token(&b));
        assert!(!hash_api_token(&a).contains(&a[TOKEN_PREFIX.len()..]));
        assert_eq!(
            hash_api_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "SHA-256 test vector"
        );
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horse!", &phc));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
