//! An independent JWT library (Python PyJWT) verifies our access tokens against our JWKS with
//! issuer, audience and expiry checks.

use std::process::Command;

use crate::{ISSUER, start};

fn have_pyjwt() -> bool {
    test_support::oracle::python("jwt, cryptography", "python3 with PyJWT[crypto]")
}

#[tokio::test]
async fn pyjwt_verifies_access_tokens_against_the_jwks() {
    if !have_pyjwt() {
        return;
    }
    let env = start().await;
    let token = env.token(None).await;
    let jwks = env.client.get(env.url("/jwks")).send().await.unwrap().text().await.unwrap();
    let script = r#"
import json, sys, jwt
token, jwks, issuer = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
kid = jwt.get_unverified_header(token)["kid"]
key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="https://kms.demo.local:8081",
                    issuer=issuer, options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]})
assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
try:
    jwt.decode(token, key.key, algorithms=["ES256"], audience="https://wrong.example", issuer=issuer)
    sys.exit("a wrong audience was accepted")
except jwt.InvalidAudienceError:
    pass
print(json.dumps(claims))
"#;
    let out = Command::new("python3").args(["-c", script, &token, &jwks, ISSUER]).output().unwrap();
    assert!(out.status.success(), "PyJWT refused our token: {}", String::from_utf8_lossy(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["client_id"], "kms-service");
    env.identity.shutdown().await.unwrap();
}

fn have_authlib() -> bool {
    test_support::oracle::python("authlib, requests, jwt", "python3 with Authlib, requests and PyJWT")
}

/// Authlib (a client nobody here wrote) runs client_credentials, the authorization code flow
/// with PKCE through our sign-in form, userinfo and refresh; PyJWT verifies access and ID
/// tokens against our JWKS; `at_hash` is recomputed with Python's hashlib.
#[tokio::test]
async fn authlib_runs_client_credentials_code_pkce_and_refresh() {
    if !have_authlib() {
        return;
    }
    let env = start().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/authlib_oracle.py");
    let ca = env.dir.path().join("pki/ca-bundle.pem");
    let port = env.identity.server.addr.port().to_string();
    let mut command = Command::new("python3");
    command
        .arg(&script)
        // Only our CA: a system bundle named in the environment must not stand in for it.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .args([ISSUER, &port, ca.to_str().unwrap(), crate::KMS_SECRET, "alice", crate::ALICE_PASSWORD]);
    let seen = crate::run_python("the Authlib client", command).await;
    assert_eq!(seen["client_credentials_client_secret_basic"], "kms-service");
    assert_eq!(seen["client_credentials_client_secret_post"], "kms-service");
    assert_eq!(seen["userinfo"]["email"], "alice@acme.example");
    assert_eq!(seen["refresh_reuse"], "invalid_grant");
    env.identity.shutdown().await.unwrap();
}
