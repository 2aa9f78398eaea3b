//! Passwords at rest: AES-256-GCM with a key from the services' environment.
//!
//! A sealed secret is `enc:v1:<base64(nonce || ciphertext)>`. The key is the SHA-256 of
//! `FERRY_SECRET_KEY`; every service of a deployment must share it. Without it a built-in
//! development key is used and a warning says so.

use crate::KitError;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use ferry_schemas::task::{Secret, TaskSpec};
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc:v1:";
const DEV_KEY: &str = "ferry-development-key-do-not-use-in-production";

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl SecretBox {
    pub fn new(passphrase: &str) -> Self {
        let digest = Sha256::digest(passphrase.as_bytes());
        Self { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&digest)) }
    }

    /// The key from `FERRY_SECRET_KEY`, or the development key with a warning.
    pub fn from_env() -> Self {
        match std::env::var("FERRY_SECRET_KEY") {
            Ok(k) if !k.is_empty() => Self::new(&k),
            _ => {
                tracing::warn!(
                    "FERRY_SECRET_KEY is not set: task passwords are sealed with the built-in development key; set FERRY_SECRET_KEY on every service for production"
                );
                Self::new(DEV_KEY)
            }
        }
    }

    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    pub fn seal(&self, plain: &str) -> Result<String, KitError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .map_err(|_| KitError::Secret("encryption failed".into()))?;
        let mut buf = nonce.to_vec();
        buf.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(buf)))
    }

    /// Opens a sealed value; a value that is not sealed is returned as it is.
    pub fn open(&self, value: &str) -> Result<String, KitError> {
        let Some(b64) = value.strip_prefix(PREFIX) else { return Ok(value.to_owned()) };
        let wrong_key = || {
            KitError::Secret("cannot decrypt a task password: FERRY_SECRET_KEY differs from the key of the service that stored the task; give every service the same FERRY_SECRET_KEY".into())
        };
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| wrong_key())?;
        if raw.len() < 12 {
            return Err(wrong_key());
        }
        let (nonce, ct) = raw.split_at(12);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), ct).map_err(|_| wrong_key())?;
        String::from_utf8(plain).map_err(|_| wrong_key())
    }

    /// Seals every password of a spec (already sealed ones are kept).
    pub fn seal_spec(&self, spec: &mut TaskSpec) -> Result<(), KitError> {
        for s in [&mut spec.source.password, &mut spec.target.password] {
            if !Self::is_sealed(&s.0) {
                *s = Secret(self.seal(&s.0)?);
            }
        }
        Ok(())
    }

    /// Opens every password of a spec.
    pub fn open_spec(&self, spec: &mut TaskSpec) -> Result<(), KitError> {
        for s in [&mut spec.source.password, &mut spec.target.password] {
            *s = Secret(self.open(&s.0)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let b = SecretBox::new("k1");
        let sealed = b.seal("p@ss wörd").unwrap();
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("p@ss"));
        assert_eq!(b.open(&sealed).unwrap(), "p@ss wörd");
        assert!(SecretBox::new("k2").open(&sealed).is_err());
        assert_eq!(b.open("plain").unwrap(), "plain");
    }
}
