//! The JWT attack corpus in `testdata/jwt/`: every case turned into a token against this run's
//! keys, and the validator's verdict compared with the one the case expects.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwks_cache::{Algorithm, Validator, ValidatorConfig};
use serde_json::Value;

use crate::support::{AUD, Fixture, TestKey};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/jwt")
}

/// Replaces `"{{now±N}}"` (quoted) with numbers, `{{kid}}` and `{{iss}}` with text.
fn fill(template: &str, now: u64, kid: &str, iss: &str) -> String {
    let mut out = template.replace("{{kid}}", kid).replace("{{iss}}", iss);
    while let Some(start) = out.find("\"{{now") {
        let end = start + out[start..].find("}}\"").unwrap() + 3;
        let expr = &out[start + 6..end - 3];
        let value = match expr.chars().next() {
            None => now,
            Some('+') => now + expr[1..].parse::<u64>().unwrap(),
            Some('-') => now - expr[1..].parse::<u64>().unwrap(),
            _ => panic!("bad template {expr}"),
        };
        out.replace_range(start..end, &value.to_string());
    }
    out
}

fn part(case: &Value, object: &str, raw: &str) -> String {
    match (case.get(object), case.get(raw)) {
        (Some(v), None) => v.to_string(),
        (None, Some(Value::String(s))) => s.clone(),
        _ => panic!("a case needs exactly one of {object} and {raw}"),
    }
}

fn build(case: &Value, fx: &Fixture, iss: &str) -> String {
    let now = fx.now();
    let kid = fx.key.kid.as_str();
    let signing = case["signing"].as_str().unwrap();
    if signing == "raw" {
        return fill(case["token"].as_str().unwrap(), now, kid, iss);
    }
    let header = fill(&part(case, "header", "header_raw"), now, kid, iss);
    let mut claims = fill(&part(case, "claims", "claims_raw"), now, kid, iss);
    if signing == "oversized" {
        let mut object: Value = serde_json::from_str(&claims).unwrap();
        object["pad"] = Value::String("x".repeat(case["pad_bytes"].as_u64().unwrap() as usize));
        claims = object.to_string();
    }
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(&header), URL_SAFE_NO_PAD.encode(&claims));
    match signing {
        "es256" | "oversized" => fx.key.sign_raw(&header, &claims),
        "es256-other-key" => TestKey::new(kid).sign_raw(&header, &claims),
        "none" => format!("{input}."),
        "hs256-with-public-key" => {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, fx.key.public_point());
            let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
        }
        "ecdsa-zero-sig" => format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64])),
        "truncated" => {
            let token = fx.key.sign_raw(&header, &claims);
            match &case["truncate"] {
                Value::String(s) if s == "signature" => input,
                Value::Number(n) => token[..token.len() - n.as_u64().unwrap() as usize].to_owned(),
                other => panic!("bad truncate {other}"),
            }
        }
        other => panic!("unknown signing mode {other}"),
    }
}

#[tokio::test]
async fn every_attack_in_the_corpus_is_refused_and_the_valid_cases_pass() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    provider.refresh().await.unwrap();
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus is missing: {}", corpus_dir().display());
    let mut passed = 0;
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let case: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        assert!(case["description"].as_str().is_some_and(|d| !d.is_empty()), "{name}: no description");
        let algorithms: Vec<Algorithm> = match case.get("algorithms") {
            Some(list) => {
                list.as_array().unwrap().iter().map(|a| a.as_str().unwrap().parse().unwrap()).collect()
            }
            None => vec![Algorithm::ES256],
        };
        let validator = Validator::new(
            provider.clone(),
            ValidatorConfig::new([AUD], &algorithms).with_required_typ("at+jwt"),
        )
        .unwrap();
        let token = build(&case, &fx, provider.issuer());
        let outcome = validator.validate(&token).await;
        let expected = case["expect"].as_str().unwrap();
        match outcome {
            Ok(claims) => {
                assert_eq!(expected, "ok", "{name}: accepted, expected {expected}");
                assert_eq!(claims["sub"], "alice", "{name}");
            }
            Err(err) => {
                assert_eq!(err.kind().as_str(), expected, "{name}: {err}");
                let message = err.to_string();
                assert!(token.len() < 8 || !message.contains(&token), "{name}: the message quotes the token");
                if let Some(kid) = case["header"].get("kid").and_then(Value::as_str)
                    && kid.len() > 8
                    && kid != "{{kid}}"
                {
                    assert!(!message.contains(kid), "{name}: the message quotes the kid: {message}");
                }
            }
        }
        passed += 1;
    }
    assert_eq!(passed, files.len());
    // The unknown-kid cases cost the issuer at most one refetch between them.
    assert!(fx.issuer.requests() <= 2, "{} requests", fx.issuer.requests());
}
