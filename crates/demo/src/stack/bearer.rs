//! `demo all`'s cross-service flows: Identity's access tokens at the KMS (DESIGN §8) —
//! client_credentials → encrypt + decrypt, a user's token from the code flow, a missing scope
//! (403), no token and a tampered token (401), and a revoked token refused by the KMS's
//! introspection of a sensitive operation.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kms_proto::{DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, Jwe};
use serde::Serialize;

use super::identity::{client_credentials, code_flow, expect_status, post_form, secret};
use super::kms::{parse, problem_detail};
use super::{Ctx, id};
use crate::engine::{Phase, Plan, Step, StepError};

/// The KMS's audience in Identity's tokens.
pub(crate) const KMS_AUDIENCE: &str = "https://kms.demo.local:8081";

/// A KMS answer: status, body (unread) and the `WWW-Authenticate` challenges, if any.
struct Answer {
    status: u16,
    body: Vec<u8>,
    challenge: Option<String>,
}

/// Calls the KMS with a Bearer token.
async fn call(c: &Ctx, path: &str, token: Option<&str>, body: &impl Serialize) -> Result<Answer, StepError> {
    call_as(c, path, token.map(|t| format!("Bearer {t}")).as_deref(), body).await
}

/// Calls the KMS with this `Authorization` header value.
async fn call_as(
    c: &Ctx,
    path: &str,
    authorization: Option<&str>,
    body: &impl Serialize,
) -> Result<Answer, StepError> {
    let mut req = c.kms.client()?.post(c.kms.url(path)?).json(body);
    if let Some(value) = authorization {
        req = req.header(reqwest::header::AUTHORIZATION, value);
    }
    let resp = req.send().await.map_err(|e| StepError::from_error(format!("POST {path} failed"), &e))?;
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Ok(Answer { status, body, challenge: Some(challenge).filter(|c| !c.is_empty()) })
}

fn expect(what: &str, got: &Answer, want: u16) -> Result<(), StepError> {
    if got.status != want {
        return Err(StepError {
            causes: vec![format!("{}: {}", got.status, problem_detail(&got.body))],
            ..StepError::new(format!("{what} answered {}, expected {want}", got.status))
        });
    }
    Ok(())
}

fn plaintext() -> EncryptRequest {
    EncryptRequest { plaintext: B64.encode("4111 1111 1111 1111"), aad: None }
}

/// Encrypts with `token` (200 expected) and returns the JWE.
async fn encrypt(c: &Ctx, what: &str, token: &str) -> Result<Jwe, StepError> {
    let enc = call(c, ENCRYPT, Some(token), &plaintext()).await?;
    expect(what, &enc, 200)?;
    Ok(parse::<EncryptResponse>(ENCRYPT, &enc.body)?.jwe)
}

pub(crate) async fn round_trip(c: &Ctx, token: &str) -> Result<(), StepError> {
    round_trip_as(c, &format!("Bearer {token}"), "a Bearer token").await
}

/// Encrypt + decrypt with this `Authorization` value (`what` names it in errors).
pub(crate) async fn round_trip_as(c: &Ctx, authorization: &str, what: &str) -> Result<(), StepError> {
    let enc = call_as(c, ENCRYPT, Some(authorization), &plaintext()).await?;
    expect(&format!("encrypt with {what}"), &enc, 200)?;
    let jwe = parse::<EncryptResponse>(ENCRYPT, &enc.body)?.jwe;
    let dec = call_as(c, "/decrypt", Some(authorization), &DecryptRequest::from(jwe)).await?;
    expect(&format!("decrypt with {what}"), &dec, 200)?;
    if parse::<DecryptResponse>("/decrypt", &dec.body)?.plaintext != plaintext().plaintext {
        return Err(StepError::new("decrypt did not give the plaintext back"));
    }
    Ok(())
}

/// Encrypts with `token`, answering the status and the problem's detail (for refusals).
pub(crate) async fn encrypt_status(c: &Ctx, token: &str) -> Result<(u16, String), StepError> {
    encrypt_status_as(c, &format!("Bearer {token}")).await
}

/// POSTs `body` to the KMS's `path` with this `Authorization` value: the status, the
/// problem's detail (for refusals) and the body.
pub(crate) async fn post_as(
    c: &Ctx,
    path: &str,
    authorization: &str,
    body: &impl Serialize,
) -> Result<(u16, String, Vec<u8>), StepError> {
    let got = call_as(c, path, Some(authorization), body).await?;
    Ok((got.status, problem_detail(&got.body), got.body))
}

/// A sample plaintext to encrypt.
pub(crate) fn sample() -> EncryptRequest {
    plaintext()
}

/// [`encrypt_status`] with this `Authorization` value.
pub(crate) async fn encrypt_status_as(c: &Ctx, authorization: &str) -> Result<(u16, String), StepError> {
    let got = call_as(c, ENCRYPT, Some(authorization), &plaintext()).await?;
    Ok((got.status, problem_detail(&got.body)))
}

/// The path every flow encrypts at.
const ENCRYPT: &str = "/pools/payments/encrypt";

/// Adds the flows (after the KMS is healthy and Identity's flows that they build on).
pub(crate) fn flows(plan: Plan<Ctx>) -> Plan<Ctx> {
    plan.step(
        Step::new(id::FLOW_BEARER_KMS_ENCRYPT_DECRYPT, Phase::Flows, |c: Arc<Ctx>| async move {
            let token = client_credentials(&c, "demo-confidential", Some("kms:encrypt kms:decrypt")).await?;
            round_trip(&c, &token).await
        })
        .after(&[id::HEALTH_KMS, id::VERIFY_IDENTITY_CLIENTS])
        .verifies(
            "client_credentials token with kms:encrypt kms:decrypt: encrypt + decrypt round trip at the KMS",
        ),
    )
    .step(
        Step::new(id::FLOW_BEARER_KMS_USER_TOKEN, Phase::Flows, |c: Arc<Ctx>| async move {
            // A login of its own: the code flow's tokens are revoked by the refresh-reuse flow.
            let (tokens, _) = code_flow(&c, "user").await?;
            let access = tokens["access_token"].as_str().ok_or_else(|| StepError::new("no access_token"))?;
            round_trip(&c, access).await
        })
        .after(&[id::HEALTH_KMS, id::FLOW_IDENTITY_CODE_PKCE])
        .verifies(
            "a user's access token from a code flow of its own: encrypt + decrypt round trip at the KMS",
        )
        .heavy(),
    )
    .step(
        Step::new(id::FLOW_BEARER_KMS_MISSING_SCOPE, Phase::Flows, |c: Arc<Ctx>| async move {
            let token = client_credentials(&c, "demo-confidential", Some("kms:read")).await?;
            let got = call(&c, ENCRYPT, Some(&token), &plaintext()).await?;
            expect("encrypt with a kms:read token", &got, 403)
        })
        .after(&[id::HEALTH_KMS, id::VERIFY_IDENTITY_CLIENTS])
        .verifies("a kms:read token is refused encryption with 403"),
    )
    .step(
        Step::new(id::FLOW_BEARER_KMS_NO_TOKEN, Phase::Flows, |c: Arc<Ctx>| async move {
            let got = call(&c, ENCRYPT, None, &plaintext()).await?;
            expect("encrypt without credentials", &got, 401)?;
            if !got.challenge.as_deref().is_some_and(|ch| ch.contains("Bearer")) {
                return Err(StepError::new("the 401 does not offer the Bearer scheme"));
            }
            Ok(())
        })
        .after(&[id::HEALTH_KMS])
        .verifies("no token: 401 offering the Bearer scheme"),
    )
    .step(
        Step::new(id::FLOW_BEARER_KMS_TAMPERED_TOKEN, Phase::Flows, |c: Arc<Ctx>| async move {
            let token = client_credentials(&c, "demo-confidential", Some("kms:encrypt")).await?;
            // Raise the scope in the payload, keep the signature: it no longer matches.
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut claims: serde_json::Value = url
                .decode(parts.get(1).ok_or_else(|| StepError::new("not a JWT"))?)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| StepError::new("the token's payload is not JSON"))?;
            claims["scope"] = "kms:admin".into();
            parts[1] = url.encode(claims.to_string());
            let got = call(&c, ENCRYPT, Some(&parts.join(".")), &plaintext()).await?;
            expect("encrypt with a tampered token", &got, 401)?;
            if !got.challenge.as_deref().is_some_and(|ch| ch.contains("invalid_token")) {
                return Err(StepError::new("the 401 does not say invalid_token"));
            }
            Ok(())
        })
        .after(&[id::HEALTH_KMS, id::VERIFY_IDENTITY_CLIENTS])
        .verifies("a token whose payload was changed (scope raised) is refused with 401 invalid_token"),
    )
    .step(
        Step::new(id::FLOW_BEARER_KMS_REVOKED_TOKEN, Phase::Flows, |c: Arc<Ctx>| async move {
            let token = client_credentials(&c, "demo-confidential", Some("kms:encrypt kms:decrypt")).await?;
            let jwe = encrypt(&c, "encrypt before revocation", &token).await?;
            let client_secret = secret(&c.state()?.client_secret("demo-confidential"))?;
            expect_status(
                "revocation",
                post_form(&c, "/revoke", Some(("demo-confidential", &client_secret)), &[("token", &token)])
                    .await?,
                200,
            )?;
            // Decrypt is sensitive: the KMS asks Identity, which says the token is inactive.
            let dec = call(&c, "/decrypt", Some(&token), &DecryptRequest::from(jwe)).await?;
            expect("decrypt with a revoked token", &dec, 401)
        })
        .after(&[id::HEALTH_KMS, id::VERIFY_IDENTITY_CLIENTS])
        .verifies("a token revoked at Identity is refused decryption (sensitive: introspected) with 401"),
    )
}
