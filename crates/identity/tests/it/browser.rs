//! A minimal browser for the tests: a cookie jar, no redirects followed, hidden-field scraping.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::Env;

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = B64.encode(uuid::Uuid::new_v4().as_bytes()) + &B64.encode(uuid::Uuid::new_v4().as_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, B64.encode(digest.as_ref()))
}

/// What a page answered.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// `<input type="hidden" name=… value=…>` fields, unescaped.
    pub fn hidden(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for chunk in self.body.split("<input type=\"hidden\" ").skip(1) {
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

    /// A query parameter of the redirect.
    pub fn location_param(&self, name: &str) -> Option<String> {
        let location = self.location.as_ref()?;
        let query = location.split_once('?')?.1;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
        pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// One browser: its cookies persist across requests.
#[derive(Debug, Default)]
pub struct Browser {
    pub jar: BTreeMap<String, String>,
    /// Its own connection (another client address); `None`: the environment's client.
    pub client: Option<reqwest::Client>,
}

impl Browser {
    /// A browser whose connections come from `local` (see [`Env::client_from`]).
    pub fn from_address(env: &Env, local: std::net::IpAddr) -> Self {
        Self { jar: BTreeMap::new(), client: Some(env.client_from(local)) }
    }

    fn client<'a>(&'a self, env: &'a Env) -> &'a reqwest::Client {
        self.client.as_ref().unwrap_or(&env.client)
    }

    fn cookie_header(&self) -> String {
        self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        let set_cookies: Vec<String> =
            resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        for c in &set_cookies {
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let headers = resp.headers().clone();
        Page { status, location, set_cookies, headers, body: resp.text().await.unwrap() }
    }

    pub async fn get(&mut self, env: &Env, path_and_query: &str) -> Page {
        let resp = self
            .client(env)
            .get(env.url(path_and_query))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    pub async fn post(&mut self, env: &Env, path: &str, form: &[(String, String)]) -> Page {
        let resp = self
            .client(env)
            .post(env.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }
}

/// An authorization request's query for the SPA client.
pub fn authorize_query(challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", crate::SPA_REDIRECT),
        ("scope", "openid profile email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        pairs.retain(|(key, _)| key != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    format!("/authorize?{}", serde_urlencoded::to_string(&pairs).unwrap())
}

/// Fills the sign-in form of `page` and submits it.
pub async fn submit_login(
    browser: &mut Browser,
    env: &Env,
    page: &Page,
    credentials: Option<(&str, &str)>,
    action: &str,
) -> Page {
    assert_eq!(page.status, 200, "{}", page.body);
    let mut form = page.hidden();
    if let Some((user, password)) = credentials {
        form.push(("username".into(), user.into()));
        form.push(("password".into(), password.into()));
    }
    form.push(("action".into(), action.into()));
    browser.post(env, "/authorize", &form).await
}

/// Signs `user` in through the form and returns the code (asserting the redirect's shape).
pub async fn login_for_code(browser: &mut Browser, env: &Env, query: &str, user: (&str, &str)) -> String {
    let page = browser.get(env, query).await;
    let answer = submit_login(browser, env, &page, Some(user), "allow").await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location_param("iss").as_deref(), Some(crate::ISSUER));
    answer.location_param("code").expect("a code in the redirect")
}
