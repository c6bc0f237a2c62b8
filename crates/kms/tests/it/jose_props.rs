//! Property tests of the JOSE parsers: no input makes them panic, and no mutation of a valid
//! JWE decrypts or of a valid JWS verifies.

use base64::Engine as _;
use kms::crypto::{Algorithm, KeyMaterial};
use kms::jose::{self, Kid, ParsedJwe, ParsedJws};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    // Bounded: a few hundred cases per property keep the suite fast on two cores.
    ProptestConfig { cases: 400, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = ParsedJwe::parse(&text);
        let _ = ParsedJws::parse(&text);
        let _ = Kid::parse(&text);
    }

    #[test]
    fn arbitrary_dotted_base64_never_panics(parts in prop::collection::vec("[A-Za-z0-9_-]{0,60}", 0..7)) {
        let text = parts.join(".");
        let _ = ParsedJwe::parse(&text);
        let _ = ParsedJws::parse(&text);
    }

    #[test]
    fn arbitrary_headers_never_panic(header in prop::collection::vec(any::<u8>(), 0..200)) {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&header);
        let _ = ParsedJwe::parse(&format!("{b64}..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA"));
        let _ = ParsedJws::parse(&format!("{b64}.AAAA.AAAA"));
    }

    #[test]
    fn no_single_byte_change_of_a_jwe_decrypts(position in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let key = KeyMaterial::from_bytes(Algorithm::A256Gcm, zeroize::Zeroizing::new(vec![3u8; 32])).unwrap();
        let jwe = jose::encrypt_compact(&key, &Kid::new("p", 1), b"the plaintext").unwrap();
        let mut bytes = jwe.into_bytes();
        let i = position.index(bytes.len());
        bytes[i] ^= flip;
        // base64url has slack in its last character's low bits; a change there can decode to
        // the same bytes. Anything that decodes differently must fail.
        if let Ok(text) = String::from_utf8(bytes)
            && let Ok(parsed) = ParsedJwe::parse(&text)
            && let Ok(plain) = parsed.decrypt(&key)
        {
            prop_assert_eq!(&*plain, b"the plaintext");
        }
    }

    #[test]
    fn no_single_byte_change_of_a_jws_verifies_other_content(position in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let key = KeyMaterial::generate(Algorithm::EdDsa).unwrap();
        let public = key.public_key().unwrap();
        let jws = jose::sign_compact(&key, &Kid::new("s", 1), b"signed content").unwrap();
        let mut bytes = jws.into_bytes();
        let i = position.index(bytes.len());
        bytes[i] ^= flip;
        if let Ok(text) = String::from_utf8(bytes)
            && let Ok(parsed) = ParsedJws::parse(&text)
            && parsed.verify(&public).is_ok()
        {
            prop_assert_eq!(parsed.payload(), b"signed content");
        }
    }
}
