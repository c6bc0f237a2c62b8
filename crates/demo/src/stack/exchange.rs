//! `demo all`'s token-exchange flows (issue 16): a user's token exchanged by the demo gateway
//! (with its own token as actor) for a transaction token, which the KMS accepts for encrypt and
//! decrypt and reports back with its `txn`; an actor without the permission, and a wider scope,
//! refused. Also the demo's exchange policy, shared by both runtimes' Identity configuration.

use std::sync::Arc;
use std::time::Duration;

use identity::config::{ActorPolicy, ExchangeConfig};

use super::bearer::round_trip;
use super::identity::{client_credentials, code_flow, post_form, secret};
use super::oidc::{self, Expect};
use super::{Ctx, id};
use crate::engine::{Phase, Plan, Step, StepError};

/// The trust domain: transaction tokens' audience, at Identity and the KMS alike.
pub(crate) const TRUST_DOMAIN: &str = "https://demo.local";
/// The actor.
const GATEWAY: &str = "demo-gateway";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const TXN_TOKEN: &str = "urn:ietf:params:oauth:token-type:txn_token";

/// Identity's `token_exchange:` in the demo (the Docker runtime's `identity.yml` says the same):
/// the gateway may exchange access and transaction tokens for transaction tokens, delegating.
pub(crate) fn policy() -> ExchangeConfig {
    ExchangeConfig {
        trust_domain: Some(TRUST_DOMAIN.to_owned()),
        txn_token_ttl: None,
        trust_file: None,
        actors: vec![ActorPolicy {
            client_id: GATEWAY.to_owned(),
            subject_token_types: vec!["access_token".to_owned(), "txn_token".to_owned()],
            subject_issuers: vec!["self".to_owned()],
            requested_token_types: vec!["txn_token".to_owned()],
            audiences: Vec::new(),
            max_lifetime: Duration::from_secs(300),
            delegation: true,
            impersonation: false,
            unsigned_context_claims: Vec::new(),
        }],
    }
}

/// A token exchange by `actor`; returns the status and body.
async fn exchange(
    c: &Ctx,
    actor: &str,
    params: &[(&str, &str)],
) -> Result<(u16, serde_json::Value), StepError> {
    let actor_secret = secret(&c.state()?.client_secret(actor))?;
    let mut form = vec![("grant_type", EXCHANGE)];
    form.extend_from_slice(params);
    post_form(c, "/token", Some((actor, &actor_secret)), &form).await
}

/// A refusal with `error`, or a step error saying what came instead.
fn refused(what: &str, got: (u16, serde_json::Value), error: &str) -> Result<(), StepError> {
    if got.0 == 400 && got.1["error"] == error {
        return Ok(());
    }
    Err(StepError {
        causes: vec![format!("{}: {}", got.0, got.1)],
        ..StepError::new(format!("{what} was not refused with {error}"))
    })
}

/// A user's access token from a sign-in of its own.
async fn user_token(c: &Ctx) -> Result<String, StepError> {
    let (tokens, _) = code_flow(c, "user").await?;
    tokens["access_token"].as_str().map(str::to_owned).ok_or_else(|| StepError::new("no access_token"))
}

/// Adds the flows (after the KMS is healthy and the clients and users verified).
pub(crate) fn flows(plan: Plan<Ctx>) -> Plan<Ctx> {
    plan.step(
        Step::new(id::FLOW_EXCHANGE_TXN_TOKEN_KMS, Phase::Flows, |c: Arc<Ctx>| async move {
            let user = user_token(&c).await?;
            let actor = client_credentials(&c, GATEWAY, None).await?;
            let (status, body) = exchange(
                &c,
                GATEWAY,
                &[
                    ("subject_token", &user),
                    ("subject_token_type", ACCESS_TOKEN),
                    ("actor_token", &actor),
                    ("actor_token_type", ACCESS_TOKEN),
                    ("requested_token_type", TXN_TOKEN),
                    ("scope", "kms:encrypt kms:decrypt"),
                ],
            )
            .await?;
            let body = super::identity::expect_status("the token exchange", (status, body), 200)?;
            let txn_token =
                body["access_token"].as_str().ok_or_else(|| StepError::new("the exchange gave no token"))?;
            let base = c.identity.base()?;
            let claims = oidc::verify(
                txn_token,
                c.identity.jwks()?,
                &Expect { issuer: &base, audience: TRUST_DOMAIN, typ: "txntoken+jwt" },
            )?;
            let user_sub = oidc::claims(&user)?["sub"].clone();
            let checks = [
                (claims["sub"] == user_sub, "its sub is not the user's"),
                (claims["act"]["sub"] == GATEWAY, "its act does not name the gateway"),
                (claims["txn"].as_str().is_some_and(|t| !t.is_empty()), "it has no txn"),
                (claims["exp"].as_i64().zip(claims["iat"].as_i64()).is_some_and(|(e, i)| e - i <= 60), "it lives longer than 60 s"),
            ];
            if let Some((_, why)) = checks.iter().find(|(ok, _)| !ok) {
                return Err(StepError::new(format!("the transaction token is wrong: {why}")));
            }
            round_trip(&c, txn_token).await?;
            // The KMS saw the transaction: it answers with the txn it logged the operations under.
            let who = super::kms::whoami(&c, txn_token).await?;
            if who.txn.as_deref() != claims["txn"].as_str() {
                return Err(StepError::new(format!(
                    "the KMS reports txn {:?}, the token carries {}",
                    who.txn, claims["txn"]
                )));
            }
            Ok(())
        })
        .after(&[id::HEALTH_KMS, id::VERIFY_IDENTITY_CLIENTS, id::FLOW_IDENTITY_CODE_PKCE])
        .verifies("a user's token exchanged by demo-gateway (its own token as actor_token) for a transaction token (txntoken+jwt, aud the trust domain, sub the user, act the gateway, txn, ≤ 60 s), verified against the JWKS; the KMS encrypts and decrypts with it and reports the same txn")
        .heavy(),
    )
    .step(
        Step::new(id::FLOW_EXCHANGE_UNPERMITTED_ACTOR, Phase::Flows, |c: Arc<Ctx>| async move {
            let user = user_token(&c).await?;
            // demo-confidential may not exchange: neither the grant type nor a policy entry.
            let got = exchange(
                &c,
                "demo-confidential",
                &[("subject_token", &user), ("subject_token_type", ACCESS_TOKEN), ("requested_token_type", TXN_TOKEN)],
            )
            .await?;
            refused("an exchange by demo-confidential", got, "unauthorized_client")?;
            // The gateway without an actor token would act *as* the user: impersonation, not allowed.
            let got = exchange(
                &c,
                GATEWAY,
                &[("subject_token", &user), ("subject_token_type", ACCESS_TOKEN), ("requested_token_type", TXN_TOKEN)],
            )
            .await?;
            refused("impersonation by demo-gateway", got, "unauthorized_client")
        })
        .after(&[id::VERIFY_IDENTITY_CLIENTS, id::FLOW_IDENTITY_CODE_PKCE])
        .verifies("an actor without the permission (demo-confidential) and impersonation without it (demo-gateway with no actor_token) are refused with unauthorized_client")
        .heavy(),
    )
    .step(
        Step::new(id::FLOW_EXCHANGE_WIDER_SCOPE, Phase::Flows, |c: Arc<Ctx>| async move {
            let actor = client_credentials(&c, GATEWAY, None).await?;
            // The gateway's own token as subject has kms:encrypt kms:decrypt; kms:admin is wider.
            let got = exchange(
                &c,
                GATEWAY,
                &[
                    ("subject_token", &actor),
                    ("subject_token_type", ACCESS_TOKEN),
                    ("actor_token", &actor),
                    ("actor_token_type", ACCESS_TOKEN),
                    ("requested_token_type", TXN_TOKEN),
                    ("scope", "kms:encrypt kms:admin"),
                ],
            )
            .await?;
            refused("an exchange asking for a wider scope", got, "invalid_scope")
        })
        .after(&[id::VERIFY_IDENTITY_CLIENTS])
        .verifies("an exchange asking for a scope the subject token does not hold (kms:admin) is refused with invalid_scope"),
    )
}
