//! The OAuth endpoints: discovery, client_credentials, errors, introspection, revocation,
//! rotation.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;

use crate::{ISSUER, KMS_SECRET, OTHER_SECRET, start};

fn decode_part(token: &str, i: usize) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_advertises_exactly_what_is_implemented() {
    let env = start().await;
    let doc: Value = env
        .client
        .get(env.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["jwks_uri"], format!("{ISSUER}/jwks"));
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    // Every advertised endpoint answers (not 404/405) at the advertised path.
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "end_session_endpoint",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
    ] {
        let url = doc[key].as_str().unwrap();
        let path = url.strip_prefix(ISSUER).unwrap_or_else(|| panic!("{key} is not under the issuer"));
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let status = env.client.request(method.clone(), env.url(path)).send().await.unwrap().status();
            if status != 405 {
                assert_ne!(status, 404, "{key}");
            }
        }
    }
    // Nothing that is not implemented: no implicit, no password grant, no private_key_jwt.
    let text = doc.to_string();
    for absent in
        ["implicit", "\"password\"", "private_key_jwt", "token_endpoint_auth_signing_alg_values_supported"]
    {
        assert!(!text.contains(absent), "{absent} advertised");
    }
    let jwks: Value = env.client.get(env.url("/jwks")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "current and next");
    for key in jwks["keys"].as_array().unwrap() {
        assert_eq!(key["kty"], "EC");
        assert!(key.get("d").is_none(), "never a private member");
    }
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_credentials_gives_an_rfc9068_access_token() {
    let env = start().await;
    let (status, body) =
        env.post("/token", Some(("kms-service", KMS_SECRET)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap();
    let header = decode_part(token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"].as_str(), env.identity.keys.current_kid().as_deref());
    let claims = decode_part(token, 1);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "kms-service");
    assert_eq!(claims["client_id"], "kms-service");
    assert_eq!(claims["aud"], "https://kms.demo.local:8081");
    assert_eq!(claims["scope"], "kms:encrypt kms:decrypt kms:read");
    assert_eq!(claims["tenant_id"], "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10");
    assert_eq!(claims["roles"], serde_json::json!(["service"]));
    assert!(claims["jti"].as_str().unwrap().len() >= 32);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);

    // client_secret_post, a narrower scope, another allowed audience.
    let (status, body) = env
        .post(
            "/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "kms-service"),
                ("client_secret", KMS_SECRET),
                ("scope", "kms:decrypt"),
                ("resource", "https://other.demo.local"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let claims = decode_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(
        (claims["scope"].clone(), claims["aud"].clone()),
        ("kms:decrypt".into(), "https://other.demo.local".into())
    );
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn token_errors_follow_rfc6749() {
    let env = start().await;
    let cc = ("grant_type", "client_credentials");
    // (Basic credentials, form, expected status, expected OAuth error)
    type Case<'a> = (Option<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (Some(("kms-service", "wrong")), vec![cc], 401, "invalid_client"),
        (Some(("nobody", "x")), vec![cc], 401, "invalid_client"),
        (None, vec![cc, ("client_id", "kms-service")], 401, "invalid_client"),
        (None, vec![cc, ("client_id", "spa"), ("client_secret", "x")], 401, "invalid_client"),
        (Some(("kms-service", KMS_SECRET)), vec![cc, ("client_secret", KMS_SECRET)], 400, "invalid_request"),
        (Some(("kms-service", KMS_SECRET)), vec![("grant_type", "password")], 400, "unsupported_grant_type"),
        (Some(("kms-service", KMS_SECRET)), vec![("grant_type", "implicit")], 400, "unsupported_grant_type"),
        (Some(("kms-service", KMS_SECRET)), vec![], 400, "invalid_request"),
        (Some(("kms-service", KMS_SECRET)), vec![cc, ("scope", "kms:admin")], 400, "invalid_scope"),
        (
            Some(("kms-service", KMS_SECRET)),
            vec![cc, ("resource", "https://evil.example")],
            400,
            "invalid_target",
        ),
        (Some(("kms-service", KMS_SECRET)), vec![cc, cc], 400, "invalid_request"),
    ];
    for (basic, form, status, error) in cases {
        let (got, body) = env.post("/token", basic, &form).await;
        assert_eq!(
            (got, body["error"].as_str().unwrap_or("")),
            (status, error),
            "{basic:?} {form:?}: {body}"
        );
    }
    // Basic failures challenge for Basic; the body is OAuth JSON, not problem+json.
    let resp = env
        .client
        .post(env.url("/token"))
        .basic_auth("kms-service", Some("wrong"))
        .form(&[cc])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["www-authenticate"], r#"Basic realm="identity""#);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let json = env
        .client
        .post(env.url("/token"))
        .basic_auth("kms-service", Some(KMS_SECRET))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 400, "JSON bodies are not OAuth");
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn introspection_and_revocation() {
    let env = start().await;
    let token = env.token(None).await;
    let kms = Some(("kms-service", KMS_SECRET));
    let other = Some(("other-app", OTHER_SECRET));

    let (status, body) = env.post("/introspect", other, &[("token", &token)]).await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "kms-service");
    assert_eq!(body["tenant_id"], "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10");
    assert_eq!(env.post("/introspect", None, &[("token", &token)]).await.0, 401, "callers must authenticate");

    // Another client cannot revoke it; its own client can.
    assert_eq!(env.post("/revoke", other, &[("token", &token)]).await.0, 200);
    assert_eq!(env.post("/introspect", other, &[("token", &token)]).await.1["active"], true);
    assert_eq!(env.post("/revoke", kms, &[("token", &token)]).await.0, 200);
    assert_eq!(env.post("/introspect", other, &[("token", &token)]).await.1["active"], false);
    // Revoking garbage is fine (RFC 7009 §2.2).
    assert_eq!(env.post("/revoke", kms, &[("token", "garbage")]).await.0, 200);
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn forged_tokens_are_inactive() {
    let env = start().await;
    let token = env.token(None).await;
    let parts: Vec<&str> = token.split('.').collect();
    let other = Some(("other-app", OTHER_SECRET));
    let header = decode_part(&token, 0);
    let kid = header["kid"].as_str().unwrap();

    let none =
        format!("{}.{}.", B64.encode(format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#)), parts[1]);
    // HS256 "signed" with the public key (the classic key-confusion attack).
    let jwks: Value = env.client.get(env.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let public = jwks.to_string();
    let hs_header = B64.encode(format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#));
    let signing_input = format!("{hs_header}.{}", parts[1]);
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, public.as_bytes()),
        signing_input.as_bytes(),
    );
    let hs256 = format!("{signing_input}.{}", B64.encode(mac.as_ref()));
    let mut claims = decode_part(&token, 1);
    claims["scope"] = "kms:admin".into();
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2]);
    let wrong_typ = format!(
        "{}.{}.{}",
        B64.encode(format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}"}}"#)),
        parts[1],
        parts[2]
    );
    let unknown_kid = format!(
        "{}.{}.{}",
        B64.encode(r#"{"alg":"ES256","typ":"at+jwt","kid":"../../etc/passwd"}"#),
        parts[1],
        parts[2]
    );
    let zero_sig = format!("{}.{}.{}", parts[0], parts[1], B64.encode([0u8; 64]));
    for (name, forged) in [
        ("alg none", none),
        ("HS256 with the public key", hs256),
        ("tampered scope", tampered),
        ("wrong typ", wrong_typ),
        ("unknown kid", unknown_kid),
        ("r = s = 0", zero_sig),
        ("truncated", token[..token.len() - 10].to_owned()),
        ("oversized", format!("{token}{}", "A".repeat(100_000))),
    ] {
        let (status, body) = env.post("/introspect", other, &[("token", &forged)]).await;
        assert!(status == 200 || status == 413, "{name}: {status}");
        if status == 200 {
            assert_eq!(body["active"], false, "{name}");
        }
    }
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn rotation_publishes_next_first_and_keeps_the_old_key() {
    let env = start().await;
    let before = env.token(None).await;
    let jwks: Value = env.client.get(env.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<String> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    let current = env.identity.keys.current_kid().unwrap();
    let next = kids.iter().find(|k| **k != current).unwrap().clone();

    env.identity.keys.rotate(600).await.unwrap();
    assert_eq!(env.identity.keys.current_kid().unwrap(), next, "the published next key signs now");
    let after = env.token(None).await;
    assert_eq!(decode_part(&after, 0)["kid"], next.as_str());
    let jwks: Value = env.client.get(env.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 3, "retired + current + new next");
    assert!(kids.contains(&current.as_str()), "the old key stays until its tokens expire");
    let other = Some(("other-app", OTHER_SECRET));
    assert_eq!(env.post("/introspect", other, &[("token", &before)]).await.1["active"], true);
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn parallel_wrong_secrets_are_limited_and_the_cached_client_keeps_working() {
    let env = start().await;
    let _ = env.token(None).await; // kms-service's secret is now cached
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (client, url) = (env.client.clone(), env.url("/token"));
        tasks.spawn(async move {
            client
                .post(url)
                .basic_auth("kms-service", Some(format!("guess-{i}")))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
    // The limit is reached, but the client holding the real secret is answered from the cache.
    let (status, _) =
        env.post("/token", Some(("kms-service", KMS_SECRET)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200);
    env.identity.shutdown().await.unwrap();
}
