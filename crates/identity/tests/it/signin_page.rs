//! The sign-in and consent page as a person meets it: the application's name and tenant, the
//! scopes in words, labelled fields, announced errors, a strict CSP, and every text from the
//! seed escaped. (tests/it/browser_signin.rs drives it in a real browser.)

use base64::Engine as _;
use identity::config::Tokens;

use crate::browser::{Browser, Page, pkce, submit_login};
use crate::{DEMO_PASSWORD, Env, ISSUER, SPA_REDIRECT, TENANTS, start_demo, start_seeded};

/// An authorization request's query for `client_id`.
pub fn demo_query(client_id: &str, scope: &str, challenge: &str) -> String {
    let pairs = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", SPA_REDIRECT),
        ("scope", scope),
        ("state", "st-789"),
        ("nonce", "n-012"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    format!("/authorize?{}", serde_urlencoded::to_string(pairs).unwrap())
}

/// A new browser's sign-in page for `client_id` and `scope` (asserted to be a 200), and the
/// request's PKCE verifier.
async fn open_page(env: &Env, client_id: &str, scope: &str) -> (Browser, Page, String) {
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let page = browser.get(env, &demo_query(client_id, scope, &challenge)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    (browser, page, verifier)
}

/// The page's CSP allows our one stylesheet by its hash, and nothing else.
fn assert_strict_csp(page: &Page) {
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    let style = page.body.split_once("<style>").unwrap().1.split_once("</style>").unwrap().0;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, style.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    assert_eq!(
        csp,
        format!("default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; base-uri 'none'")
    );
    assert!(!page.body.contains("<script"), "no JavaScript");
    assert!(!page.body.contains(" style="), "no inline style attributes (the CSP would block them)");
}

#[tokio::test]
async fn the_demo_page_names_the_application_and_tenant_and_says_what_each_scope_allows() {
    let env = start_demo().await;
    let scope = "openid profile email kms:encrypt kms:decrypt kms:read";
    let (mut browser, page, verifier) = open_page(&env, "demo-spa", scope).await;
    let body = &page.body;
    for expected in [
        "<html lang=\"en\">",
        "<title>Sign in to Demo Web App</title>",
        "<main>",
        "<h1>Sign in to continue to Demo Web App</h1>",
        "<dt>Application</dt><dd>Demo Web App <span class=\"id\">(client ID demo-spa)</span></dd>",
        "<dt>Tenant</dt><dd>acme</dd>",
        "<h2>Your account</h2>",
        "<label for=\"username\">Username</label>",
        "<input type=\"text\" id=\"username\" name=\"username\"",
        "<label for=\"password\">Password</label>",
        "<input type=\"password\" id=\"password\" name=\"password\"",
        "<h2 id=\"scopes-heading\">Demo Web App asks to</h2>",
        // Built-in descriptions of the standard scopes, the seed's for the KMS's (escaped).
        "<li>Confirm who you are (your user ID) to the application <span class=\"scope-name\">(openid)</span></li>",
        "<li>See your e-mail address <span class=\"scope-name\">(email)</span></li>",
        "<li>Encrypt data with your organisation&#x27;s keys in the KMS <span class=\"scope-name\">(kms:encrypt)</span></li>",
        "<li>See your organisation&#x27;s key pools, their versions and public keys <span class=\"scope-name\">(kms:read)</span></li>",
        "<button type=\"submit\" name=\"action\" value=\"allow\">Allow</button>",
    ] {
        assert!(body.contains(expected), "missing {expected:?} in\n{body}");
    }
    assert!(!body.contains("role=\"alert\""), "no error on a fresh page");
    assert!(!body.contains("aria-invalid=\"true\""), "no field is invalid yet");
    // Reading order is focus order: the fields, then Allow before Deny.
    let order: Vec<usize> = ["id=\"username\"", "id=\"password\"", "value=\"allow\"", "value=\"deny\""]
        .map(|x| body.find(x).unwrap())
        .into();
    assert!(order.is_sorted(), "{order:?}");
    assert_strict_csp(&page);

    // Headless clients still sign in through it (hidden fields, form names unchanged).
    let answer = submit_login(&mut browser, &env, &page, Some(("admin", DEMO_PASSWORD)), "allow").await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(answer.location.as_deref().unwrap().starts_with(&format!("{SPA_REDIRECT}?code=")));
    assert_eq!(answer.location_param("state").as_deref(), Some("st-789"));
    assert_eq!(answer.location_param("iss").as_deref(), Some(ISSUER));
    let code = answer.location_param("code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "demo-spa"),
        ("code", code.as_str()),
        ("redirect_uri", SPA_REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, tokens) = env.post("/token", None, &form).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "openid profile email kms:encrypt kms:decrypt kms:read");

    // With a session the page greets the user instead of asking for a password.
    let (_, challenge) = pkce();
    let again = browser.get(&env, &demo_query("demo-spa", "openid", &challenge)).await;
    assert!(again.body.contains("<p>Signed in as <strong>admin</strong>.</p>"), "{}", again.body);
    assert!(!again.body.contains("id=\"password\""));
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_is_announced_and_tied_to_the_fields() {
    let env = start_demo().await;
    let (mut browser, page, _) = open_page(&env, "demo-spa", "openid kms:read").await;
    let answer = submit_login(&mut browser, &env, &page, Some(("admin", "not-the-password")), "allow").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.location.is_none());
    let body = &answer.body;
    assert!(
        body.contains(
            "<p id=\"signin-error\" class=\"error\" role=\"alert\">Invalid username or password.</p>"
        ),
        "{body}"
    );
    assert!(body.contains("name=\"username\" value=\"admin\""), "the username is kept: {body}");
    for field in ["username", "password"] {
        let input = body.split(&format!("id=\"{field}\"")).nth(1).unwrap().split_once('>').unwrap().0;
        assert!(input.contains("aria-describedby=\"signin-error\""), "{field}: {input}");
        assert!(input.contains("aria-invalid=\"true\""), "{field}: {input}");
    }
    // The error comes before the fields it describes.
    assert!(body.find("role=\"alert\"").unwrap() < body.find("id=\"username\"").unwrap());
    // The form is whole again: the right password now goes through.
    let retry = Page { status: 200, ..answer };
    let ok = submit_login(&mut browser, &env, &retry, Some(("admin", DEMO_PASSWORD)), "allow").await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(ok.location_param("code").is_some());
    env.identity.shutdown().await.unwrap();
}

/// A seed whose every text a person reads is hostile markup.
const HOSTILE_SEED: &str = r#"
scopes:
  "x:<i>": "\"><img src=x onerror=alert(1)>"
  x:plain: "Tom & Jerry's <b>tool</b>"
users: []
clients:
  - client_id: hostile
    name: "</title><script>alert('name')</script>"
    type: public
    grant_types: [authorization_code]
    scopes: [openid, "x:<i>", x:plain, "x:<u>raw</u>"]
    redirect_uris: [https://app.demo.local/callback]
    tenant: "<b>evil&co</b>"
"#;

#[tokio::test]
async fn hostile_names_descriptions_scopes_and_tenants_are_escaped() {
    let tenants = "\"<b>evil&co</b>\": 5d8f6a2e-1c3b-4e7a-9f0d-2b4c6e8a0f13\n";
    let env = start_seeded(HOSTILE_SEED, tenants, Tokens::default()).await.unwrap();
    let (mut browser, page, _) = open_page(&env, "hostile", "openid x:<i> x:plain x:<u>raw</u>").await;
    let body = &page.body;
    for raw in ["<script", "<img", "<b>", "<i>", "<u>", "</title><script"] {
        assert!(!body.contains(raw), "{raw:?} reached the page unescaped:\n{body}");
    }
    for escaped in [
        "<title>Sign in to &lt;/title&gt;&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;</title>",
        "<h1>Sign in to continue to &lt;/title&gt;&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;</h1>",
        "<dt>Tenant</dt><dd>&lt;b&gt;evil&amp;co&lt;/b&gt;</dd>",
        "<li>&quot;&gt;&lt;img src=x onerror=alert(1)&gt; <span class=\"scope-name\">(x:&lt;i&gt;)</span></li>",
        "<li>Tom &amp; Jerry&#x27;s &lt;b&gt;tool&lt;/b&gt; <span class=\"scope-name\">(x:plain)</span></li>",
        // Described nowhere: the raw name, escaped.
        "<li><span class=\"scope-name\">x:&lt;u&gt;raw&lt;/u&gt;</span></li>",
    ] {
        assert!(body.contains(escaped), "missing {escaped:?} in\n{body}");
    }
    // The hidden scope field round-trips the raw value for the form's POST.
    assert!(page.hidden().contains(&("scope".into(), "openid x:<i> x:plain x:<u>raw</u>".into())));
    assert_strict_csp(&page);

    // A hostile username comes back escaped in the refilled field.
    let answer = submit_login(&mut browser, &env, &page, Some(("x\"><img src=x>", "pw")), "allow").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body.contains("name=\"username\" value=\"x&quot;&gt;&lt;img src=x&gt;\""),
        "{}",
        answer.body
    );
    assert!(!answer.body.contains("<img"), "{}", answer.body);
    env.identity.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bad_scope_description_stops_identity_at_start_naming_file_and_key() {
    let seed = "scopes:\n  kms:encrypt: \"\"\n  \"kms read\": Read keys\nclients: []\n";
    let err = start_seeded(seed, TENANTS, Tokens::default()).await.unwrap_err();
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    for expected in
        ["seed.yml", "2 invalid setting(s)", "`scopes.kms:encrypt`", "must not be empty", "`scopes.kms read`"]
    {
        assert!(chain.contains(expected), "missing {expected:?} in {chain}");
    }
}
