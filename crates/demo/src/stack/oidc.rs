//! A headless OpenID Connect relying party for the demo's flows: PKCE, driving Identity's
//! sign-in form over HTTPS (hidden fields, the CSRF cookie), and verifying JWTs against the
//! JWKS with the algorithm pinned. Deliberately small and independent of Identity's own code:
//! it checks the service from the outside, as a client would.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::engine::StepError;

/// A PKCE verifier (256 random bits) and its S256 challenge.
pub(crate) fn pkce() -> Result<(String, String), StepError> {
    let verifier = random()?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    Ok((verifier, B64.encode(digest.as_ref())))
}

/// 256 random bits, base64url (state, nonce, verifier).
pub(crate) fn random() -> Result<String, StepError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| StepError::new("the random generator failed"))?;
    Ok(B64.encode(bytes))
}

/// The hidden fields of the sign-in form (values unescaped).
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let mut out = Vec::new();
    for chunk in html.split("<input type=\"hidden\" ").skip(1) {
        let attr = |name: &str| {
            let start = chunk.find(&format!("{name}=\""))? + name.len() + 2;
            let end = start + chunk[start..].find('"')?;
            Some(unescape(&chunk[start..end]))
        };
        if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
            out.push((n, v));
        }
    }
    out
}

/// An authorization request.
pub(crate) struct Authorize<'a> {
    pub base: &'a str,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub challenge: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
}

/// How the browser proves who it is at the form.
pub(crate) enum SignIn<'a> {
    /// Username and password typed into the form; a session starts.
    Password { user: &'a str, password: &'a str },
    /// The session cookie of an earlier sign-in (`__Host-session=…`): only consent is asked.
    Session { user: &'a str, cookie: &'a str },
}

/// What a sign-in gave: the authorization code and the browser's session cookie.
pub(crate) struct SignedIn {
    pub code: String,
    pub session: Option<String>,
}

/// Signs in through the form (or consents with an existing session) and returns the
/// authorization code, after checking that the redirect goes to `redirect_uri` with our `state`
/// and the issuer's `iss`.
pub(crate) async fn sign_in(
    client: &reqwest::Client,
    a: &Authorize<'_>,
    how: SignIn<'_>,
) -> Result<SignedIn, StepError> {
    let (user, session) = match &how {
        SignIn::Password { user, .. } => (*user, None),
        SignIn::Session { user, cookie } => (*user, Some(*cookie)),
    };
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", a.client_id),
        ("redirect_uri", a.redirect_uri),
        ("scope", a.scope),
        ("state", a.state),
        ("nonce", a.nonce),
        ("code_challenge", a.challenge),
        ("code_challenge_method", "S256"),
    ])
    .map_err(|e| StepError::from_error("cannot encode the authorization request", &e))?;
    let mut get = client.get(format!("{}/authorize?{query}", a.base));
    if let Some(cookie) = session {
        get = get.header(reqwest::header::COOKIE, cookie);
    }
    let page = get.send().await.map_err(|e| StepError::from_error("GET /authorize failed", &e))?;
    if page.status() != 200 {
        return Err(StepError::new(format!(
            "GET /authorize answered {}, expected the sign-in form",
            page.status()
        )));
    }
    let csrf_cookie = page
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-csrf="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| StepError::new("the sign-in form set no CSRF cookie"))?;
    let html = page.text().await.map_err(|e| StepError::from_error("reading the sign-in form failed", &e))?;
    let mut form = hidden_fields(&html);
    if !form.iter().any(|(k, _)| k == "csrf") {
        return Err(StepError::new("the sign-in form has no CSRF field"));
    }
    let cookies = match &how {
        SignIn::Password { user, password } => {
            if html.contains("Signed in as") {
                return Err(StepError::new("the sign-in form offered a session where none was sent"));
            }
            form.push(("username".into(), (*user).into()));
            form.push(("password".into(), (*password).into()));
            csrf_cookie
        }
        SignIn::Session { cookie, .. } => format!("{csrf_cookie}; {cookie}"),
    };
    form.push(("action".into(), "allow".into()));
    let answer = client
        .post(format!("{}/authorize", a.base))
        .header(reqwest::header::COOKIE, cookies)
        .form(&form)
        .send()
        .await
        .map_err(|e| StepError::from_error("POST /authorize failed", &e))?;
    if answer.status() != 303 {
        return Err(StepError::new(format!(
            "signing in as {user} answered {}, expected 303",
            answer.status()
        )));
    }
    let new_session = answer
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let location = answer
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| StepError::new("the sign-in redirect has no Location"))?;
    let (target, query) = location.split_once('?').unwrap_or((location, ""));
    if target != a.redirect_uri {
        return Err(StepError::new(format!("redirected to {target}, not the registered {}", a.redirect_uri)));
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let param = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    if param("state") != Some(a.state) {
        return Err(StepError::new("the redirect does not carry our state"));
    }
    if param("iss") != Some(a.issuer) {
        return Err(StepError::new("the redirect's iss is not the issuer"));
    }
    let code =
        param("code").map(str::to_owned).ok_or_else(|| StepError::new("the redirect carries no code"))?;
    Ok(SignedIn { code, session: new_session.or_else(|| session.map(str::to_owned)) })
}

/// A JWT's claims, read without verifying anything (to compare with a verified token's).
pub(crate) fn claims(token: &str) -> Result<serde_json::Value, StepError> {
    token
        .split('.')
        .nth(1)
        .and_then(|p| B64.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| StepError::new("the token's payload is not JSON"))
}

/// What a JWT must be.
pub(crate) struct Expect<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub typ: &'a str,
}

/// Verifies a JWT's signature with the JWKS key its `kid` names (ES256 only, whatever the
/// header says), and `iss`, `aud`, `exp`, `typ`. Returns the claims.
pub(crate) fn verify(
    token: &str,
    jwks: &serde_json::Value,
    e: &Expect<'_>,
) -> Result<serde_json::Value, StepError> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let header = jsonwebtoken::decode_header(token)
        .map_err(|err| StepError::from_error("the token's header is malformed", &err))?;
    if header.alg != Algorithm::ES256 {
        return Err(StepError::new(format!("the token is signed with {:?}, not ES256", header.alg)));
    }
    if header.typ.as_deref() != Some(e.typ) {
        return Err(StepError::new(format!("the token's typ is {:?}, expected {}", header.typ, e.typ)));
    }
    let kid = header.kid.ok_or_else(|| StepError::new("the token has no kid"))?;
    let jwk = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| StepError::new(format!("kid {kid} is not in the JWKS")))?;
    let key = DecodingKey::from_ec_components(
        jwk["x"].as_str().unwrap_or_default(),
        jwk["y"].as_str().unwrap_or_default(),
    )
    .map_err(|err| StepError::from_error("the JWKS key is unusable", &err))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[e.issuer]);
    validation.set_audience(&[e.audience]);
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|err| StepError::from_error("the token does not verify", &err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_fields_are_found_and_unescaped() {
        let html = r#"<form><input type="hidden" name="state" value="a&amp;b&quot;c">
<input type="hidden" name="csrf" value="xyz"><input type="text" name="username"></form>"#;
        assert_eq!(
            hidden_fields(html),
            vec![("state".to_owned(), "a&b\"c".to_owned()), ("csrf".to_owned(), "xyz".to_owned())]
        );
    }

    #[test]
    fn pkce_challenge_is_the_s256_of_the_verifier() {
        let (verifier, challenge) = pkce().unwrap();
        assert_eq!(verifier.len(), 43);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        assert_eq!(challenge, B64.encode(digest.as_ref()));
    }
}
