//! Cryptography for sessions and login links, all from `ring` (already built for rustls)
//! plus `subtle` for constant-time comparison:
//!
//! - [`StoreCipher`]: ChaCha20-Poly1305 with a key derived from the configured secret by
//!   HKDF-SHA-256 (per-store random salt), a fresh random 96-bit nonce per record, and the
//!   record's key as associated data, so a sealed record cannot be moved to another user.
//! - [`LinkId`]: 256 random bits, hex in the link; only its SHA-256 digest is kept and it is
//!   compared in constant time.
//! - [`CsrfKey`]: HMAC-SHA-256 of the link id under a per-process random key: the form's
//!   CSRF token is bound to the link it was served for.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hkdf, hmac};
use secrecy::zeroize::Zeroizing;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// First byte of every sealed record: the format (algorithm, nonce size) it was written in.
const SEALED_FORMAT_V1: u8 = 1;
/// HKDF `info` for the store key: names the purpose, so the same secret used elsewhere
/// yields an unrelated key.
const STORE_KEY_INFO: &[u8] = b"st2bot session store v1 chacha20-poly1305";
/// The shortest encryption secret accepted, in bytes.
pub(crate) const MIN_SECRET_LEN: usize = 16;

/// Why a cryptographic operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The operating system's random source failed.
    #[error("the system random number generator failed")]
    Random,
    /// A sealed record is too short, of an unknown format, was written under another key,
    /// or was altered.
    #[error("the record cannot be decrypted (other key, or damaged)")]
    Unreadable,
    /// Encryption itself failed (cannot happen for in-range inputs; reported, not unwrapped).
    #[error("encryption failed")]
    Seal,
}

/// Fills a fixed-size array from the system random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// Authenticated encryption of stored session records.
pub(crate) struct StoreCipher {
    key: LessSafeKey,
}

impl StoreCipher {
    /// Derives the record key from the configured secret and the store's salt.
    pub(crate) fn derive(secret: &Secret, salt: &[u8]) -> Result<Self, CryptoError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(secret.expose().as_bytes());
        let info = [STORE_KEY_INFO];
        let okm = prk
            .expand(&info, &CHACHA20_POLY1305)
            .map_err(|_| CryptoError::Seal)?;
        let key = UnboundKey::from(okm);
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// Encrypts `plaintext`, authenticating `context` with it. Output: format byte, nonce,
    /// ciphertext and tag.
    pub(crate) fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes()?;
        let mut buffer = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        buffer.push(SEALED_FORMAT_V1);
        buffer.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        let aad = associated_data(context);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(&aad[..]),
                &mut body,
            )
            .map_err(|_| CryptoError::Seal)?;
        buffer.extend_from_slice(&body);
        Ok(buffer)
    }

    /// Decrypts what [`StoreCipher::seal`] produced for the same `context`. The plaintext is
    /// wiped from memory when dropped.
    pub(crate) fn open(
        &self,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (format, rest) = sealed.split_first().ok_or(CryptoError::Unreadable)?;
        if *format != SEALED_FORMAT_V1 || rest.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(CryptoError::Unreadable);
        }
        let (nonce_bytes, body) = rest.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError::Unreadable)?;
        let mut buffer = Zeroizing::new(body.to_vec());
        let aad = associated_data(context);
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(&aad[..]), &mut buffer)
            .map_err(|_| CryptoError::Unreadable)?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }
}

/// The associated data: the format byte and the caller's context.
fn associated_data(context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + context.len());
    aad.push(SEALED_FORMAT_V1);
    aad.extend_from_slice(context);
    aad
}

/// A login link's secret: 256 random bits.
pub(crate) struct LinkId([u8; 32]);

impl LinkId {
    /// A fresh random id.
    pub(crate) fn generate() -> Result<Self, CryptoError> {
        Ok(Self(random_bytes()?))
    }

    /// Parses the hex form found in a link; `None` unless exactly 64 hex digits.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let bytes = from_hex(text)?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The hex form put in the link (64 characters). Treat it as a secret.
    pub(crate) fn to_hex(&self) -> Secret {
        Secret::new(to_hex(&self.0))
    }

    /// What the bot keeps instead of the id itself.
    pub(crate) fn digest(&self) -> LinkDigest {
        let d = digest::digest(&digest::SHA256, &self.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        LinkDigest(out)
    }
}

/// SHA-256 of a [`LinkId`]; compared in constant time.
#[derive(Clone, Copy)]
pub(crate) struct LinkDigest([u8; 32]);

impl LinkDigest {
    /// Constant-time equality.
    pub(crate) fn matches(&self, other: &LinkDigest) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

/// Signs and checks CSRF tokens bound to a link id.
pub(crate) struct CsrfKey(hmac::Key);

impl CsrfKey {
    /// A fresh per-process key (pending links do not survive a restart, nor need their
    /// CSRF tokens to).
    pub(crate) fn generate() -> Result<Self, CryptoError> {
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(random_bytes()?);
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &bytes[..])))
    }

    /// The token to put in the form served for `link`.
    pub(crate) fn token_for(&self, link: &LinkId) -> Secret {
        Secret::new(to_hex(hmac::sign(&self.0, &link.0).as_ref()))
    }

    /// Whether `token` is the one issued for `link` (constant time).
    pub(crate) fn verify(&self, link: &LinkId, token: &str) -> bool {
        match from_hex(token) {
            Some(tag) => hmac::verify(&self.0, &link.0, &tag).is_ok(),
            None => false,
        }
    }
}

/// Lower-case hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Parses hex (either case); `None` on odd length or a non-hex character.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(secret: &str, salt: &[u8]) -> StoreCipher {
        StoreCipher::derive(&Secret::new(secret), salt).unwrap()
    }

    #[test]
    fn sealed_records_round_trip_and_differ_each_time() {
        let c = cipher("0123456789abcdef0123", b"salt");
        let a = c.seal(b"alice", b"token-value").unwrap();
        let b = c.seal(b"alice", b"token-value").unwrap();
        assert_ne!(a, b, "a fresh nonce per record");
        assert!(!a.windows(11).any(|w| w == b"token-value"), "not in clear");
        assert_eq!(&c.open(b"alice", &a).unwrap()[..], b"token-value");
        assert_eq!(&c.open(b"alice", &b).unwrap()[..], b"token-value");
    }

    #[test]
    fn other_key_other_salt_other_context_or_tampering_are_refused() {
        let c = cipher("0123456789abcdef0123", b"salt");
        let sealed = c.seal(b"alice", b"token-value").unwrap();
        let other_key = cipher("another secret value!", b"salt");
        assert!(matches!(
            other_key.open(b"alice", &sealed),
            Err(CryptoError::Unreadable)
        ));
        let other_salt = cipher("0123456789abcdef0123", b"pepper");
        assert!(other_salt.open(b"alice", &sealed).is_err());
        assert!(c.open(b"bob", &sealed).is_err(), "bound to its user");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(c.open(b"alice", &bad).is_err(), "flipped byte {i} accepted");
        }
        assert!(c.open(b"alice", &sealed[..sealed.len() - 1]).is_err());
        assert!(c.open(b"alice", &[]).is_err());
        assert!(c.open(b"alice", &[SEALED_FORMAT_V1]).is_err());
    }

    #[test]
    fn link_ids_are_random_hex_and_digests_compare() {
        let a = LinkId::generate().unwrap();
        let b = LinkId::generate().unwrap();
        let a_hex = a.to_hex();
        assert_eq!(a_hex.expose().len(), 64);
        assert_ne!(a_hex.expose(), b.to_hex().expose());
        let parsed = LinkId::parse(a_hex.expose()).unwrap();
        assert!(bool::from(parsed.digest().matches(&a.digest())));
        assert!(!bool::from(b.digest().matches(&a.digest())));
        assert!(LinkId::parse(&a_hex.expose()[..62]).is_none());
        assert!(LinkId::parse(&format!("{}zz", &a_hex.expose()[..62])).is_none());
        assert!(LinkId::parse("").is_none());
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_link() {
        let key = CsrfKey::generate().unwrap();
        let a = LinkId::generate().unwrap();
        let b = LinkId::generate().unwrap();
        let token = key.token_for(&a);
        assert!(key.verify(&a, token.expose()));
        assert!(!key.verify(&b, token.expose()));
        assert!(!key.verify(&a, ""));
        assert!(!key.verify(&a, "not hex"));
        let other_process = CsrfKey::generate().unwrap();
        assert!(!other_process.verify(&a, token.expose()));
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(to_hex(&bytes), "00017f80ff");
        assert_eq!(from_hex("00017F80ff").unwrap(), bytes);
        assert!(from_hex("0").is_none());
        assert!(from_hex("0g").is_none());
        assert!(from_hex("é0").is_none());
    }
}
