//! A bounded, seeded fuzz loop: random bytes and mutated valid tokens must be refused (or,
//! for unmutated tokens, accepted) without a panic and without hammering the issuer.

use jwks_cache::{Algorithm, Validator, ValidatorConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::{AUD, Fixture};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\"";

fn mutate(rng: &mut StdRng, token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    match rng.gen_range(0..7) {
        0 => {
            // Flip a character to another of the token alphabet (or a dot).
            let i = rng.gen_range(0..bytes.len());
            bytes[i] = ALPHABET[rng.gen_range(0..ALPHABET.len())];
        }
        1 => bytes.truncate(rng.gen_range(0..bytes.len())),
        2 => {
            let i = rng.gen_range(0..bytes.len());
            bytes.remove(i);
        }
        3 => {
            let i = rng.gen_range(0..=bytes.len());
            bytes.insert(i, ALPHABET[rng.gen_range(0..ALPHABET.len())]);
        }
        4 => {
            // Swap two parts.
            let parts: Vec<&str> = token.split('.').collect();
            let (a, b) = (rng.gen_range(0..parts.len()), rng.gen_range(0..parts.len()));
            let mut parts = parts.clone();
            parts.swap(a, b);
            bytes = parts.join(".").into_bytes();
        }
        5 => {
            // Random bytes, any value.
            let len = rng.gen_range(0..400);
            bytes = (0..len).map(|_| rng.r#gen::<u8>()).collect();
        }
        _ => {
            // Random token-alphabet text with dots.
            let len = rng.gen_range(0..400);
            bytes = (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())]).collect();
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn mutated_and_random_tokens_never_panic_and_cost_at_most_one_refetch() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    let validator = Validator::new(
        provider.clone(),
        ValidatorConfig::new([AUD], &[Algorithm::ES256]).with_required_typ("at+jwt"),
    )
    .unwrap();
    let token = fx.key.token(&fx.claims(provider.issuer()));
    validator.validate(&token).await.unwrap();
    let mut rng = StdRng::seed_from_u64(0x6a77_6b73);
    let mut accepted = 0;
    for _ in 0..3000 {
        let candidate = mutate(&mut rng, &token);
        if validator.validate(&candidate).await.is_ok() {
            // Only the unmutated token may pass: no changed header, payload or signature.
            assert_eq!(candidate, token, "a mutated token was accepted");
            accepted += 1;
        }
    }
    assert!(accepted < 3000, "every mutation was a no-op: the loop tested nothing");
    assert!(fx.issuer.requests() <= 2, "{} requests", fx.issuer.requests());
}
