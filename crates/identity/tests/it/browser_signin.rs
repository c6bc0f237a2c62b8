//! A real browser signs in: Debian's Chromium driven by Playwright (tests/it/browser_signin.py)
//! against Identity with the shipped demo seed. It checks the page as a person and a screen
//! reader meet it (name, tenant, scope texts, labels, focus order and outline, the error
//! announced and tied to the fields, JavaScript off), signs in, consents, and reaches the
//! client's redirect with `code`, `state` and `iss`; the code is then redeemed here.
//!
//! Chromium trusts our leaf by its SPKI hash only, and resolves nothing but identity.demo.local.
//! Screenshots go to a temporary directory, or to `IDENTITY_SCREENSHOT_DIR` when set (to look
//! at them).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::browser::pkce;
use crate::signin_page::demo_query;
use crate::{DEMO_PASSWORD, ISSUER, SPA_REDIRECT, start_demo};

const CHROMIUM: &str = "/usr/bin/chromium";

fn have_playwright_and_chromium() -> bool {
    let playwright = Command::new("python3")
        .args(["-c", "import playwright.sync_api, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    let chromium = Path::new(CHROMIUM).exists();
    if !(playwright && chromium) {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with playwright (pip) or {CHROMIUM} (apt: chromium) is missing under CI: .ci/run must install them"
        );
        eprintln!(
            "SKIPPED: needs python3 with playwright (pip, pinned in .ci/requirements.txt) and Debian's chromium at {CHROMIUM}"
        );
    }
    playwright && chromium
}

/// A PNG file of some size (a blank or failed screenshot is a few hundred bytes).
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
    assert!(bytes.len() > 10_000, "{} is suspiciously small ({} bytes)", path.display(), bytes.len());
}

#[tokio::test]
async fn chromium_signs_in_consents_and_reaches_the_redirect_with_code_state_and_iss() {
    if !have_playwright_and_chromium() {
        return;
    }
    let env = start_demo().await;
    let (verifier, challenge) = pkce();
    let query = demo_query("demo-spa", "openid profile email kms:encrypt kms:read", &challenge);
    let url = env.url(&query);
    let leaf = pki::PkiDir::new(env.dir.path().join("pki")).leaf("identity").cert;
    let shots = match std::env::var_os("IDENTITY_SCREENSHOT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => env.dir.path().join("screenshots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/browser_signin.py");
    let args = [
        url,
        leaf.to_str().unwrap().to_owned(),
        "user".to_owned(),
        DEMO_PASSWORD.to_owned(),
        SPA_REDIRECT.to_owned(),
        shots.to_str().unwrap().to_owned(),
    ];
    let mut command = Command::new("python3");
    command.arg(&script).args(&args).env("CHROMIUM", CHROMIUM);
    let seen = crate::run_python("the browser sign-in", command).await;

    // The page as a person reads it.
    assert_eq!(seen["lang"], "en");
    assert_eq!(seen["main"], 1);
    assert_eq!(seen["title"], "Sign in to Demo Web App");
    assert_eq!(seen["h1"], "Sign in to continue to Demo Web App");
    let context = seen["context"].as_str().unwrap();
    assert!(context.contains("Demo Web App (client ID demo-spa)") && context.contains("acme"), "{context}");
    let scopes: Vec<&str> = seen["scopes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(scopes.len(), 5, "{scopes:?}");
    assert_eq!(scopes[3], "Encrypt data with your organisation's keys in the KMS (kms:encrypt)");
    assert_eq!(scopes[2], "See your e-mail address (email)");
    assert!(!seen["csp"].as_str().unwrap().contains("unsafe"), "{}", seen["csp"]);
    // Keyboard and screen reader.
    assert_eq!(seen["focus_order"], serde_json::json!(["username", "password", "allow", "deny"]));
    assert_eq!(seen["focus_visible"], true, "every focused control shows an outline");
    assert_eq!(seen["alert"], "Invalid username or password.");
    assert_eq!(seen["username_invalid"], "true");
    for shot in ["signin.png", "signin-focus.png", "signin-error.png"] {
        assert_png(&shots.join(shot));
    }

    // The redirect: intercepted, with code, state and iss.
    let callback = seen["callback"].as_str().unwrap_or_else(|| panic!("no callback reached: {seen}"));
    let (base, query) = callback.split_once('?').unwrap();
    assert_eq!(base, SPA_REDIRECT);
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    let param = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(param("state"), Some("st-789"));
    assert_eq!(param("iss"), Some(ISSUER));
    let code = param("code").expect("a code");
    // The code is real: it redeems for the scopes the person saw.
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "demo-spa"),
        ("code", code),
        ("redirect_uri", SPA_REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, tokens) = env.post("/token", None, &form).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "openid profile email kms:encrypt kms:read");
    env.identity.shutdown().await.unwrap();
}
