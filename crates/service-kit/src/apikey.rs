//! The API key format (`dak_…`), shared by Identity, which makes and verifies keys, and the
//! resource servers, which refuse a malformed key without asking Identity.
//!
//! A key is `dak_` followed by 93 base62 characters: the tenant (22), the key's id (22), a
//! 256-bit secret (43) and a CRC-32 of everything before it (6). The prefix lets secret
//! scanners find a key; the checksum tells a typo or a truncated key from a real one offline.

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::db::TenantKey;

/// A key could not be made: the system's random source failed, or a key id was not 32 hex
/// digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot make an API key: the system's random source failed or the key id is not 32 hex digits")]
pub struct MakeKeyError;

/// Every key starts with this.
pub const PREFIX: &str = "dak_";
/// A key's length: the prefix and 93 base62 characters.
pub const KEY_LEN: usize = PREFIX.len() + UUID_CHARS * 2 + SECRET_CHARS + CRC_CHARS;

const UUID_CHARS: usize = 22;
const SECRET_CHARS: usize = 43;
const CRC_CHARS: usize = 6;

/// Why a text is not an API key (decided offline, before any lookup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not `dak_…`.
    #[error("it does not start with {PREFIX}")]
    Prefix,
    /// Too short or too long (a truncated or pasted-twice key).
    #[error("it is not {KEY_LEN} characters long")]
    Length,
    /// A character outside base62.
    #[error("it has characters no key has")]
    Characters,
    /// The checksum does not match: a typo.
    #[error("its checksum does not match (a typo?)")]
    Checksum,
}

/// A key taken apart.
pub struct ParsedKey {
    /// Its tenant.
    pub tenant: TenantKey,
    /// Its id (32 hex digits).
    pub key_id: String,
    secret: Zeroizing<[u8; 32]>,
}

impl ParsedKey {
    /// The secret (for its MAC).
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

impl std::fmt::Debug for ParsedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedKey")
            .field("tenant", &self.tenant)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `bytes` as a big-endian number in base62, `width` digits (leading zeros kept). Written here
/// because the key's layout needs fixed widths of 128- and 256-bit values, which the base62
/// crates (variable-width, `u128` at most) do not offer; it is a few lines of long division.
fn base62(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        let mut rem = 0u32;
        for b in number.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        *slot = ALPHABET[rem as usize];
    }
    // `width` is chosen so every value fits: 62^22 > 2^128, 62^43 > 2^256, 62^6 > 2^32.
    String::from_utf8(digits).unwrap_or_default()
}

/// The inverse of [`base62`] into `N` bytes; `None` for a character outside the alphabet or a
/// value that does not fit.
fn unbase62<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    for c in text.bytes() {
        let digit = ALPHABET.iter().position(|&a| a == c)? as u32;
        let mut carry = digit;
        for b in out.iter_mut().rev() {
            let acc = u32::from(*b) * 62 + carry;
            *b = (acc & 0xff) as u8;
            carry = acc >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(out)
}

fn checksum(body: &str) -> String {
    base62(&crc32fast::hash(body.as_bytes()).to_be_bytes(), CRC_CHARS)
}

/// Takes a presented key apart, checking its form and checksum (no lookup).
pub fn parse(text: &str) -> Result<ParsedKey, Malformed> {
    let rest = text.strip_prefix(PREFIX).ok_or(Malformed::Prefix)?;
    if text.len() != KEY_LEN {
        return Err(Malformed::Length);
    }
    if !rest.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Malformed::Characters);
    }
    let (body, crc) = text.split_at(KEY_LEN - CRC_CHARS);
    // Not secret: a checksum of the key, compared to catch typos.
    if checksum(body) != crc {
        return Err(Malformed::Checksum);
    }
    let (tenant, rest) = rest.split_at(UUID_CHARS);
    let (id, rest) = rest.split_at(UUID_CHARS);
    let secret = &rest[..SECRET_CHARS];
    let tenant = unbase62::<16>(tenant).ok_or(Malformed::Characters)?;
    let tenant =
        TenantKey::parse(&uuid::Uuid::from_bytes(tenant).to_string()).map_err(|_| Malformed::Characters)?;
    let id = unbase62::<16>(id).ok_or(Malformed::Characters)?;
    let secret = Zeroizing::new(unbase62::<32>(secret).ok_or(Malformed::Characters)?);
    Ok(ParsedKey { tenant, key_id: id.iter().map(|b| format!("{b:02x}")).collect(), secret })
}

/// The text of the key with these parts: prefix, the base62 parts, the checksum.
pub fn text_of(tenant: &TenantKey, id: &[u8; 16], secret: &[u8; 32]) -> Result<SecretString, MakeKeyError> {
    let tenant = uuid::Uuid::parse_str(&tenant.canonical()).map_err(|_| MakeKeyError)?;
    let body = Zeroizing::new(format!(
        "{PREFIX}{}{}{}",
        base62(tenant.as_bytes(), UUID_CHARS),
        base62(id, UUID_CHARS),
        base62(secret, SECRET_CHARS)
    ));
    Ok(SecretString::from(format!("{}{}", body.as_str(), checksum(&body))))
}

/// A new secret for `tenant`, under the key id `id` (32 hex digits: a rotation) or a new one;
/// its parts and its text (shown once).
pub fn new_key(tenant: &TenantKey, id: Option<&str>) -> Result<(ParsedKey, SecretString), MakeKeyError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let id: [u8; 16] = match id {
        Some(hex) => *uuid::Uuid::parse_str(hex).map_err(|_| MakeKeyError)?.as_bytes(),
        None => {
            let mut id = [0u8; 16];
            aws_lc_rs::rand::SecureRandom::fill(&rng, &mut id).map_err(|_| MakeKeyError)?;
            id
        }
    };
    let mut secret = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::SecureRandom::fill(&rng, secret.as_mut()).map_err(|_| MakeKeyError)?;
    let text = text_of(tenant, &id, &secret)?;
    Ok((ParsedKey { tenant: *tenant, key_id: id.iter().map(|b| format!("{b:02x}")).collect(), secret }, text))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn tenant() -> TenantKey {
        TenantKey::parse("0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10").unwrap()
    }

    #[test]
    fn a_generated_key_parses_back_and_every_damage_is_caught_offline() {
        let (key, text) = new_key(&tenant(), None).unwrap();
        let text = text.expose_secret();
        assert_eq!(text.len(), KEY_LEN);
        assert!(text.starts_with(PREFIX) && text[PREFIX.len()..].bytes().all(|c| c.is_ascii_alphanumeric()));
        let back = parse(text).unwrap();
        assert_eq!((back.tenant, back.key_id.as_str()), (tenant(), key.key_id.as_str()));
        assert_eq!(back.secret(), key.secret());

        assert_eq!(parse(&text[..KEY_LEN - 1]).unwrap_err(), Malformed::Length, "truncated");
        assert_eq!(parse(PREFIX).unwrap_err(), Malformed::Length, "prefix only");
        assert_eq!(parse(&format!("{text}x")).unwrap_err(), Malformed::Length);
        assert_eq!(parse(&text.replacen(PREFIX, "dk__", 1)).unwrap_err(), Malformed::Prefix);
        // One character changed anywhere (but the checksum's own): the checksum says so.
        for i in PREFIX.len()..KEY_LEN - CRC_CHARS {
            let mut damaged = text.as_bytes().to_vec();
            damaged[i] = if damaged[i] == b'a' { b'b' } else { b'a' };
            let damaged = String::from_utf8(damaged).unwrap();
            assert_eq!(parse(&damaged).unwrap_err(), Malformed::Checksum, "position {i}");
        }
        let mut other = text.to_owned();
        other.replace_range(10..11, "-");
        assert_eq!(parse(&other).unwrap_err(), Malformed::Characters);
        // Multi-byte characters of the right byte length: refused, no panic on a char boundary.
        let multibyte = format!("{PREFIX}{}", "é".repeat((KEY_LEN - PREFIX.len()) / 2));
        assert!(parse(&multibyte).is_err());
        let odd = format!("{PREFIX}{}a", "é".repeat((KEY_LEN - PREFIX.len()) / 2));
        assert!(parse(&odd).is_err());
    }

    #[test]
    fn base62_round_trips_at_the_edges() {
        for bytes in [[0u8; 16], [0xff; 16], [1; 16]] {
            assert_eq!(unbase62::<16>(&base62(&bytes, UUID_CHARS)), Some(bytes));
        }
        assert_eq!(unbase62::<32>(&base62(&[0xff; 32], SECRET_CHARS)), Some([0xff; 32]));
        // A value too large for 16 bytes is refused, not wrapped.
        assert_eq!(unbase62::<16>(&"z".repeat(UUID_CHARS)), None);
    }

    #[test]
    fn a_rotation_keeps_tenant_and_id_and_changes_the_secret() {
        let (old, _) = new_key(&tenant(), None).unwrap();
        let (_, rotated) = new_key(&tenant(), Some(&old.key_id)).unwrap();
        let back = parse(rotated.expose_secret()).unwrap();
        assert_eq!((back.tenant, &back.key_id), (tenant(), &old.key_id));
        assert_ne!(back.secret(), old.secret());
    }
}
