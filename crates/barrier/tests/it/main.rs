//! Integration tests of the barrier: shares, the sealed root key, wrapped data.
// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use barrier::{BarrierError, SealedRoot, Share};
use secrecy::ExposeSecret;

fn shares(m: u8, n: u8) -> Vec<Share> {
    barrier::new_shares(m, n).unwrap()
}

/// Re-encodes a share's text with one field replaced and a valid checksum, as an attacker who
/// edits a share file would.
fn forge(share: &Share, field: usize, value: &str) -> Share {
    let text = share.encode().expose_secret().to_owned();
    let mut parts: Vec<String> = text.split(':').map(str::to_owned).collect();
    parts[field] = value.to_owned();
    parts.pop();
    let body = parts.join(":");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
    let check: String = digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{body}:{check}").parse().unwrap()
}

#[test]
fn shares_round_trip_through_text() {
    for share in shares(3, 5) {
        let text = share.encode();
        assert!(text.expose_secret().starts_with("demo-unseal-share:v1:"));
        let back: Share = format!("  {}\n", text.expose_secret()).parse().unwrap();
        assert_eq!(back, share);
    }
}

#[test]
fn any_three_of_five_open_the_same_root() {
    let all = shares(3, 5);
    let key = barrier::combine(&all[..3]).unwrap();
    let (sealed, root) = SealedRoot::create(&key).unwrap();
    let wrapped = root.wrap("tenant/t1/pool/p1/v1", b"pool key material").unwrap();
    for subset in [[0, 1, 2], [2, 3, 4], [0, 2, 4], [4, 1, 3]] {
        let picked: Vec<Share> = subset.iter().map(|&i| all[i].clone()).collect();
        let root = sealed.open(&barrier::combine(&picked).unwrap()).unwrap();
        assert_eq!(&*root.unwrap("tenant/t1/pool/p1/v1", &wrapped).unwrap(), b"pool key material");
    }
    // All five work too.
    assert!(sealed.open(&barrier::combine(&all).unwrap()).is_ok());
}

#[test]
fn too_few_duplicated_or_no_shares_are_refused() {
    let all = shares(3, 5);
    assert_eq!(barrier::combine(&all[..2]).unwrap_err(), BarrierError::TooFewShares { given: 2, needed: 3 });
    let dup = vec![all[0].clone(), all[1].clone(), all[1].clone()];
    assert_eq!(barrier::combine(&dup).unwrap_err(), BarrierError::DuplicateShare { index: all[1].index() });
    assert_eq!(barrier::combine(&[]).unwrap_err(), BarrierError::NoShares);
}

#[test]
fn shares_of_another_barrier_are_refused() {
    let a = shares(3, 5);
    let b = shares(3, 5);
    let mixed = vec![a[0].clone(), a[1].clone(), b[2].clone()];
    assert!(matches!(barrier::combine(&mixed).unwrap_err(), BarrierError::MixedBarriers { .. }));

    let (sealed, _) = SealedRoot::create(&barrier::combine(&a[..3]).unwrap()).unwrap();
    let err = sealed.open(&barrier::combine(&b[..3]).unwrap()).unwrap_err();
    assert!(matches!(err, BarrierError::ForeignBarrier { .. }), "{err}");
}

#[test]
fn an_altered_share_is_caught_before_anything_is_decrypted() {
    let all = shares(3, 5);
    // A different value under a valid checksum: combines to the wrong key, caught by the verifier.
    let bogus = forge(&all[2], 5, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let err = barrier::combine(&[all[0].clone(), all[1].clone(), bogus]).unwrap_err();
    assert_eq!(err, BarrierError::WrongShares);
    // A share claiming a lower threshold disagrees with the others.
    let lowered = forge(&all[2], 3, "2");
    assert_eq!(barrier::combine(&[all[0].clone(), lowered]).unwrap_err(), BarrierError::Inconsistent);
    // A share claiming another index combines wrongly.
    let moved = forge(&all[2], 4, "9");
    assert_eq!(
        barrier::combine(&[all[0].clone(), all[1].clone(), moved]).unwrap_err(),
        BarrierError::WrongShares
    );
}

#[test]
fn damaged_share_text_is_refused_with_the_reason() {
    let text = shares(2, 3)[0].encode().expose_secret().to_owned();
    let mut chars: Vec<char> = text.chars().collect();
    let i = text.rfind(':').unwrap() - 3;
    chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
    let damaged: String = chars.into_iter().collect();
    let err = damaged.parse::<Share>().unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    for bad in ["", "hello", "demo-unseal-share:v2:x:x:x:x:x:x", "demo-unseal-share:v1:a:b:c:d:e"] {
        assert!(matches!(bad.parse::<Share>(), Err(BarrierError::ShareFormat { .. })), "{bad}");
    }
}

#[test]
fn a_tampered_seal_or_blob_does_not_open() {
    let all = shares(3, 5);
    let key = barrier::combine(&all[..3]).unwrap();
    let (mut sealed, root) = SealedRoot::create(&key).unwrap();
    let json = serde_json::to_string(&sealed).unwrap();
    assert_eq!(serde_json::from_str::<SealedRoot>(&json).unwrap(), sealed);

    let blob = root.wrap("pool/a/1", b"secret").unwrap();
    assert!(matches!(root.unwrap("pool/b/1", &blob), Err(BarrierError::Unwrap { .. })), "context binds");
    let mut flipped = blob.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(root.unwrap("pool/a/1", &flipped).is_err(), "tag");
    assert!(root.unwrap("pool/a/1", &blob[..10]).is_err(), "truncated");
    assert!(root.unwrap("pool/a/1", &[]).is_err(), "empty");
    // Fresh nonces: wrapping twice differs.
    assert_ne!(root.wrap("pool/a/1", b"secret").unwrap(), blob);

    sealed.wrapped.replace_range(..4, "AAAA");
    assert_eq!(sealed.open(&key).unwrap_err(), BarrierError::SealBroken);
    sealed.wrapped = "not base64!".into();
    assert_eq!(sealed.open(&key).unwrap_err(), BarrierError::SealBroken);
}

#[test]
fn parameters_are_checked() {
    assert!(matches!(barrier::new_shares(0, 5), Err(BarrierError::Parameters { .. })));
    assert!(matches!(barrier::new_shares(6, 5), Err(BarrierError::Parameters { .. })));
    assert_eq!(barrier::new_shares(1, 1).unwrap().len(), 1);
}

#[test]
fn debug_output_never_carries_secret_material() {
    let all = shares(2, 2);
    let share_text = all[0].encode().expose_secret().to_owned();
    let value = share_text.split(':').nth(5).unwrap().to_owned();
    let key = barrier::combine(&all).unwrap();
    let (_, root) = SealedRoot::create(&key).unwrap();
    for shown in [format!("{:?}", all[0]), format!("{key:?}"), format!("{root:?}")] {
        assert!(!shown.contains(&value), "{shown}");
    }
    assert!(format!("{:?}", all[0]).contains("REDACTED"));
}
