//! `demo all`'s API key flows (issue 17): `demo-confidential` makes API keys at Identity with a
//! management token (`identity:api-keys`); a key encrypts and decrypts at the KMS
//! (`Authorization: ApiKey …`), so does the access token it is exchanged for, and a damaged key
//! is refused; a key for one pool is refused in
//! another; a key is rotated with an overlap (both secrets verify), deleted (refused at once by
//! Identity), restored. Each flow deletes the keys it made (they stay restorable for Identity's
//! retention period, then are purged).

use std::sync::Arc;

use serde_json::{Value, json};

use super::bearer::{encrypt_status_as, round_trip_as};
use super::identity::{expect_status, post_form, secret};
use super::{Ctx, id};
use crate::engine::{Phase, Plan, Step, StepError};

/// The audience of Identity's management tokens (its `api_keys.audience`: a fixed name, as the
/// KMS's audience is, whatever port Identity listens on).
pub(crate) const IDENTITY_AUDIENCE: &str = "https://identity.demo.local:8082";
/// The client that owns the demo's keys.
const OWNER: &str = "demo-confidential";

/// A management token of [`OWNER`].
async fn manage_token(c: &Ctx) -> Result<String, StepError> {
    let secret = secret(&c.state()?.client_secret(OWNER))?;
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "identity:api-keys"),
        ("resource", IDENTITY_AUDIENCE),
    ];
    let body = expect_status(
        "a management token for API keys",
        post_form(c, "/token", Some((OWNER, &secret)), &form).await?,
        200,
    )?;
    body["access_token"].as_str().map(str::to_owned).ok_or_else(|| StepError::new("no access_token"))
}

/// Calls Identity's key API; status and JSON body.
async fn api(
    c: &Ctx,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value), StepError> {
    let url = format!("{}/api/v1/api-keys{path}", c.identity.base()?);
    let client = c.identity.client()?;
    let request = match method {
        "GET" => client.get(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    }
    .bearer_auth(token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request
        .send()
        .await
        .map_err(|e| StepError::from_error(format!("{method} /api/v1/api-keys{path} failed"), &e))?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

fn expect(what: &str, got: (u16, Value), want: u16) -> Result<Value, StepError> {
    if got.0 != want {
        let detail = got.1["detail"].as_str().unwrap_or_default().to_owned();
        return Err(StepError {
            causes: vec![format!("{}: {detail}", got.0)],
            ..StepError::new(format!("{what} answered {}, expected {want}", got.0))
        });
    }
    Ok(got.1)
}

/// A new key with `permissions`, named `prefix-<random>` (names are unique per owner among live
/// keys, and a reused stack keeps earlier runs' deleted ones); its id and its text.
async fn make_key(
    c: &Ctx,
    token: &str,
    prefix: &str,
    permissions: &[&str],
) -> Result<(String, String), StepError> {
    let name = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let made = expect(
        "creating an API key",
        api(c, "POST", "", token, Some(json!({"name": name, "permissions": permissions}))).await?,
        201,
    )?;
    let id = made["id"].as_str().ok_or_else(|| StepError::new("the new key has no id"))?;
    let key = made["key"].as_str().ok_or_else(|| StepError::new("the new key is not in the answer"))?;
    Ok((id.to_owned(), key.to_owned()))
}

/// `key` exchanged at `/token` for an access token (RFC 8693, subject type API key) of 60 s.
async fn exchange(c: &Ctx, key: &str) -> Result<String, StepError> {
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token_type", "urn:demo:params:oauth:token-type:api-key"),
        ("subject_token", key),
        ("requested_lifetime", "60"),
    ];
    let body =
        expect_status("exchanging an API key for a token", post_form(c, "/token", None, &form).await?, 200)?;
    body["access_token"].as_str().map(str::to_owned).ok_or_else(|| StepError::new("no access_token"))
}

/// Identity's verification of `key`, asked as the KMS asks (its client, a named verifier).
async fn verify(c: &Ctx, key: &str) -> Result<Value, StepError> {
    let secret = secret(&c.state()?.client_secret("kms-service"))?;
    expect_status(
        "verifying an API key",
        post_form(c, "/api/v1/api-keys/verify", Some(("kms-service", &secret)), &[("key", key)]).await?,
        200,
    )
}

async fn delete(c: &Ctx, token: &str, id: &str) -> Result<Value, StepError> {
    expect("deleting an API key", api(c, "DELETE", &format!("/{id}"), token, None).await?, 200)
}

/// The API key flows (for `demo all`, after the KMS is healthy and Identity's clients are seeded).
pub(crate) fn flows(plan: Plan<Ctx>) -> Plan<Ctx> {
    plan.step(
        Step::new(id::FLOW_APIKEY_KMS, Phase::Flows, |c: Arc<Ctx>| async move {
            let token = manage_token(&c).await?;
            let (id, key) = make_key(&c, &token, "demo", &["kms:encrypt", "kms:decrypt"]).await?;
            let used = round_trip_as(&c, &format!("ApiKey {key}"), "an API key").await;
            // The same key exchanged for a short-lived JWT (no client authentication: the key is
            // the credential), which the KMS takes as any Bearer token.
            let exchanged = exchange(&c, &key).await;
            let used_jwt = match &exchanged {
                Ok(jwt) => round_trip_as(&c, &format!("Bearer {jwt}"), "a token exchanged for an API key").await,
                Err(_) => Ok(()),
            };
            // One character changed: the checksum tells, and the KMS refuses it with the reason.
            let mut damaged = key.clone().into_bytes();
            damaged[50] = if damaged[50] == b'a' { b'b' } else { b'a' };
            let damaged = String::from_utf8(damaged).map_err(|_| StepError::new("the key is not text"))?;
            let refused = encrypt_status_as(&c, &format!("ApiKey {damaged}")).await;
            delete(&c, &token, &id).await?;
            used?;
            exchanged?;
            used_jwt?;
            let (status, detail) = refused?;
            if status != 401 || !detail.contains("malformed") {
                return Err(StepError::new(format!(
                    "a damaged API key answered {status} ({detail}), expected 401 saying malformed"
                )));
            }
            Ok(())
        })
        .after(&[id::HEALTH_KMS, id::VERIFY_IDENTITY_CLIENTS])
        .verifies("an API key made at Identity (shown once) encrypts and decrypts at the KMS (Authorization: ApiKey), and so does the 60 s access token it is exchanged for at /token; the key with one character changed is refused with 401 (its checksum)"),
    )
    .step(
        Step::new(id::FLOW_APIKEY_POOL_SCOPED, Phase::Flows, |c: Arc<Ctx>| async move {
            let token = manage_token(&c).await?;
            let permissions = ["kms:encrypt@pool:payments", "kms:decrypt@pool:payments"];
            let (id, key) = make_key(&c, &token, "payments-only", &permissions).await?;
            let outcome = pool_scoped(&c, &format!("ApiKey {key}")).await;
            delete(&c, &token, &id).await?;
            outcome
        })
        .after(&[id::HEALTH_KMS, id::VERIFY_IDENTITY_CLIENTS])
        .verifies("a key holding kms:encrypt and kms:decrypt on pool payments only encrypts in payments (200), is refused encryption in another pool (403) and decryption, which names no pool (403)"),
    )
    .step(
        Step::new(id::FLOW_APIKEY_LIFECYCLE, Phase::Flows, |c: Arc<Ctx>| async move {
            let token = manage_token(&c).await?;
            let (id, old) = make_key(&c, &token, "rotated", &["kms:encrypt"]).await?;
            let outcome = lifecycle(&c, &token, &id, &old).await;
            // Deleted in the end whatever happened (a no-op when the flow left it deleted).
            let _ = api(&c, "DELETE", &format!("/{id}"), &token, None).await;
            outcome
        })
        .after(&[id::HEALTH_IDENTITY, id::VERIFY_IDENTITY_CLIENTS])
        .verifies("a key rotated with a 60 s overlap: the old and the new secret both verify; deleted: refused at once by Identity; restored: it verifies again"),
    )
}

async fn lifecycle(c: &Ctx, token: &str, id: &str, old: &str) -> Result<(), StepError> {
    let active = |v: &Value| v["active"] == true;
    let rotated = expect(
        "rotating an API key",
        api(c, "POST", &format!("/{id}/rotate"), token, Some(json!({"overlap": 60}))).await?,
        200,
    )?;
    let new =
        rotated["key"].as_str().ok_or_else(|| StepError::new("the rotated key is not in the answer"))?;
    if !(active(&verify(c, old).await?) && active(&verify(c, new).await?)) {
        return Err(StepError::new(
            "within the rotation's overlap, the old and the new secret must both verify",
        ));
    }
    delete(c, token, id).await?;
    let after = verify(c, new).await?;
    if active(&after) || after["reason"] != "deleted" {
        return Err(StepError::new(format!("a deleted key still verifies: {after}")));
    }
    expect("restoring an API key", api(c, "POST", &format!("/{id}/restore"), token, None).await?, 200)?;
    if !active(&verify(c, new).await?) {
        return Err(StepError::new("a restored key does not verify"));
    }
    Ok(())
}

/// What a key holding encrypt and decrypt on pool `payments` only may do.
async fn pool_scoped(c: &Ctx, authorization: &str) -> Result<(), StepError> {
    let sample = super::bearer::sample();
    let (status, detail, body) =
        super::bearer::post_as(c, "/pools/payments/encrypt", authorization, &sample).await?;
    if status != 200 {
        return Err(StepError::new(format!(
            "encrypting in payments answered {status} ({detail}), expected 200"
        )));
    }
    let (status, detail, _) =
        super::bearer::post_as(c, "/pools/orders/encrypt", authorization, &sample).await?;
    if status != 403 {
        return Err(StepError::new(format!(
            "encrypting in pool orders answered {status} ({detail}), expected 403"
        )));
    }
    let jwe = serde_json::from_slice::<kms_proto::EncryptResponse>(&body)
        .map_err(|e| StepError::from_error("the encrypt answer is not the expected JSON", &e))?
        .jwe;
    let (status, detail, _) =
        super::bearer::post_as(c, "/decrypt", authorization, &kms_proto::DecryptRequest::from(jwe)).await?;
    if status != 403 {
        return Err(StepError::new(format!(
            "decrypting (no pool named) answered {status} ({detail}), expected 403"
        )));
    }
    Ok(())
}
