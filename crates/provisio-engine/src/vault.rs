//! Secrets at rest: XChaCha20-Poly1305 with a 256-bit key kept outside the
//! database.
//!
//! The key comes from `PROVISIO_SECRET_KEY` (64 hex digits) or from a key
//! file created with mode 0600 on first start. Each value is sealed with a
//! fresh random 24-byte nonce (safe without a counter) and bound to its row
//! by associated data (`configuration:7`), so a ciphertext copied to another
//! row does not decrypt.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::{Map, Value};

use crate::EngineError;

/// Encrypts and decrypts secret fields, and digests staff tokens.
#[derive(Clone)]
pub struct Vault {
    cipher: XChaCha20Poly1305,
    /// Key of the keyed digests (derived from the secrets key, never the key itself).
    digest_key: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault([key redacted])")
    }
}

/// Where the key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The environment variable.
    Environment,
    /// An existing key file.
    File,
    /// A key file created now.
    Created,
}

const NONCE_LEN: usize = 24;

impl Vault {
    /// A vault with this 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        use sha2::Digest;
        let digest_key = sha2::Sha256::new().chain_update(b"provisio keyed digests v1").chain_update(key).finalize();
        Vault { cipher: XChaCha20Poly1305::new_from_slice(key).expect("32-byte key"), digest_key: digest_key.into() }
    }

    /// HMAC-SHA256 of `text` under this vault's digest key, in hex: how staff
    /// tokens are stored, so a copied database without the key gives no way
    /// to test guesses.
    pub fn digest(&self, text: &str) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.digest_key).expect("any key length");
        mac.update(text.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A value that tells whether a database was written with this key.
    pub fn check_value(&self) -> String {
        self.digest("provisio secrets key check")
    }

    /// Loads the key from `hex_key` (the environment variable's value) or
    /// from `key_file`, creating the file (mode 0600) if neither exists.
    pub fn load(hex_key: Option<&str>, key_file: &Path) -> Result<(Vault, KeySource), EngineError> {
        if let Some(hex_key) = hex_key {
            let key = parse_hex_key(hex_key.trim()).ok_or_else(|| {
                EngineError::Config("PROVISIO_SECRET_KEY must be 64 hexadecimal digits (32 bytes)".into())
            })?;
            return Ok((Vault::new(&key), KeySource::Environment));
        }
        match std::fs::read_to_string(key_file) {
            Ok(text) => {
                let key = parse_hex_key(text.trim()).ok_or_else(|| {
                    EngineError::Config(format!(
                        "the key file {} does not hold 64 hexadecimal digits",
                        key_file.display()
                    ))
                })?;
                Ok((Vault::new(&key), KeySource::File))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = chacha20poly1305::Key::generate().into();
                write_key_file(key_file, &key).map_err(|err| {
                    EngineError::Config(format!("cannot create the key file {}: {err}", key_file.display()))
                })?;
                Ok((Vault::new(&key), KeySource::Created))
            }
            Err(err) => Err(EngineError::Config(format!("cannot read the key file {}: {err}", key_file.display()))),
        }
    }

    /// Seals bytes for the row named by `aad`: nonce || ciphertext.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XNonce::generate();
        let ciphertext = self
            .cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad: aad.as_bytes() })
            .expect("encryption of an in-memory buffer cannot fail");
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens what [`Vault::seal`] sealed for the same `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, EngineError> {
        if sealed.len() < NONCE_LEN {
            return Err(EngineError::Secrets(format!("sealed value for {aad} is truncated")));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| EngineError::Secrets("bad nonce".into()))?;
        self.cipher.decrypt(&nonce, Payload { msg: ciphertext, aad: aad.as_bytes() }).map_err(|_| {
            EngineError::Secrets(format!("cannot decrypt the secrets of {aad}: wrong key or tampered data"))
        })
    }

    /// Seals a map of JSON pointer to secret value (`None` when empty).
    pub fn seal_fields(&self, aad: &str, fields: &Map<String, Value>) -> Option<Vec<u8>> {
        (!fields.is_empty()).then(|| self.seal(aad, Value::Object(fields.clone()).to_string().as_bytes()))
    }

    /// Opens a sealed map of JSON pointer to secret value.
    pub fn open_fields(&self, aad: &str, sealed: Option<&[u8]>) -> Result<Map<String, Value>, EngineError> {
        let Some(sealed) = sealed else {
            return Ok(Map::new());
        };
        let plaintext = self.open(aad, sealed)?;
        match serde_json::from_slice(&plaintext) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(EngineError::Secrets(format!("the secrets of {aad} do not decode"))),
        }
    }
}

/// Puts secret values back at their JSON pointers.
pub fn merge_fields(values: &mut Value, fields: &Map<String, Value>) {
    for (pointer, secret) in fields {
        if let Some(slot) = values.pointer_mut(pointer) {
            *slot = secret.clone();
        } else if let (Some(key), Some(object)) = (pointer.strip_prefix('/'), values.as_object_mut())
            && !key.contains('/')
        {
            object.insert(key.replace("~1", "/").replace("~0", "~"), secret.clone());
        }
    }
}

/// A random token from the operating system's CSPRNG: `prefix` and 64 hex digits.
pub fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = chacha20poly1305::Key::generate().into();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

fn parse_hex_key(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

fn write_key_file(path: &Path, key: &[u8; 32]) -> std::io::Result<()> {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(hex.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_values_open_only_for_their_row() {
        let vault = Vault::new(&[7; 32]);
        let sealed = vault.seal("configuration:1", b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(vault.open("configuration:1", &sealed).unwrap(), b"hunter2");
        assert!(vault.open("configuration:2", &sealed).is_err());
        assert!(Vault::new(&[8; 32]).open("configuration:1", &sealed).is_err());
        assert_ne!(sealed, vault.seal("configuration:1", b"hunter2"), "fresh nonce each time");
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("provisio.key");
        let (first, source) = Vault::load(None, &path).unwrap();
        assert_eq!(source, KeySource::Created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (second, source) = Vault::load(None, &path).unwrap();
        assert_eq!(source, KeySource::File);
        let sealed = first.seal("x", b"y");
        assert_eq!(second.open("x", &sealed).unwrap(), b"y");
        assert!(Vault::load(Some("nothex"), &path).is_err());
        assert_eq!(Vault::load(Some(&"ab".repeat(32)), &path).unwrap().1, KeySource::Environment);
    }

    #[test]
    fn fields_round_trip() {
        let vault = Vault::new(&[1; 32]);
        let mut fields = Map::new();
        fields.insert("/api_key".into(), json!("k-123"));
        let sealed = vault.seal_fields("configuration:3", &fields).unwrap();
        let opened = vault.open_fields("configuration:3", Some(&sealed)).unwrap();
        let mut values = json!({"api_key": "[REDACTED]", "server": "a"});
        merge_fields(&mut values, &opened);
        assert_eq!(values, json!({"api_key": "k-123", "server": "a"}));
    }
}
