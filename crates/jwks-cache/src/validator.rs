//! Validating JWT access tokens (compact JWS) of one issuer against its cached keys.
//!
//! The order of checks is fixed and cheap-first: size, shape, header (refused members, pinned
//! algorithm, `typ`, `kid`), key lookup, key/algorithm fit, signature, and only then the
//! claims (`iss`, `aud`, `exp`, `nbf`, `iat`). Nothing in the token chooses how it is
//! verified: the algorithms are pinned by configuration and the key comes only from the
//! issuer's JWKS.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::clock::unix_secs_f64;
use crate::error::{ConfigError, LookupError, ValidationError};
use crate::keys::MAX_KID_BYTES;
use crate::provider::Provider;
use crate::strict_json::{self, StrictError};

/// Header members that are refused outright: keys come only from the configured JWKS
/// (`jku`, `x5u`, `jwk`, `x5c`), and no critical extension is understood (`crit`).
pub const FORBIDDEN_HEADERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

/// What a [`Validator`] accepts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ValidatorConfig {
    /// The audiences this service answers to; a token's `aud` must name at least one.
    pub audiences: Vec<String>,
    /// The algorithms the issuer signs with. A token's `alg` must be one of them *and* fit
    /// the key its `kid` names. Asymmetric only.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (at most 5 minutes).
    pub leeway: Duration,
    /// If set, the header's `typ` must be this media type (compared case-insensitively, with
    /// or without `application/`, per RFC 8725 §3.11), for example `at+jwt` (RFC 9068).
    pub required_typ: Option<String>,
    /// Longest token accepted, in bytes; longer ones are refused before parsing.
    pub max_token_bytes: usize,
}

impl ValidatorConfig {
    /// Defaults: 30 s leeway, no `typ` requirement, 8 KiB tokens.
    pub fn new<A: Into<String>>(audiences: impl IntoIterator<Item = A>, algorithms: &[Algorithm]) -> Self {
        Self {
            audiences: audiences.into_iter().map(Into::into).collect(),
            algorithms: algorithms.to_vec(),
            leeway: Duration::from_secs(30),
            required_typ: None,
            max_token_bytes: 8 * 1024,
        }
    }

    /// Requires the header's `typ` to be `typ` (for example `at+jwt`).
    pub fn with_required_typ(mut self, typ: impl Into<String>) -> Self {
        self.required_typ = Some(typ.into());
        self
    }
}

/// Validates one issuer's tokens. Cheap to clone.
///
/// ```no_run
/// # async fn demo(provider: jwks_cache::Provider, token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use jwks_cache::{Algorithm, Validator, ValidatorConfig};
///
/// let config = ValidatorConfig::new(["kms"], &[Algorithm::ES256]).with_required_typ("at+jwt");
/// let validator = Validator::new(provider, config)?;
/// let claims = validator.validate(token).await?; // serde_json::Value
/// println!("{}", claims["sub"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Validator {
    provider: Provider,
    config: ValidatorConfig,
    pinned: String,
    typ: Option<String>,
}

/// The parts of a token that passed the header checks.
struct Parsed<'a> {
    alg: Algorithm,
    kid: String,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl Validator {
    /// A validator of `provider`'s issuer: `iss` must equal [`Provider::issuer`].
    pub fn new(provider: Provider, config: ValidatorConfig) -> Result<Self, ConfigError> {
        let issuer = provider.issuer().to_owned();
        if config.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms { issuer });
        }
        if let Some(alg) = config.algorithms.iter().find(|a| a.family() == AlgorithmFamily::Hmac) {
            return Err(ConfigError::SymmetricAlgorithm { alg: *alg });
        }
        if config.audiences.is_empty() || config.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::NoAudience { issuer });
        }
        if config.leeway > Duration::from_secs(300) {
            return Err(ConfigError::Limit {
                field: "leeway",
                reason: "must be at most 5 minutes".to_owned(),
            });
        }
        if !(256..=1024 * 1024).contains(&config.max_token_bytes) {
            return Err(ConfigError::Limit {
                field: "max_token_bytes",
                reason: "must be between 256 bytes and 1 MiB".to_owned(),
            });
        }
        let typ = match &config.required_typ {
            Some(t) if normalise_typ(t).is_empty() => {
                return Err(ConfigError::Limit {
                    field: "required_typ",
                    reason: "must not be empty".to_owned(),
                });
            }
            Some(t) => Some(normalise_typ(t)),
            None => None,
        };
        let pinned = config.algorithms.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ");
        Ok(Self { provider, config, pinned, typ })
    }

    /// The issuer whose tokens this validates.
    pub fn issuer(&self) -> &str {
        self.provider.issuer()
    }

    /// The provider whose keys this uses.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// Validates `token` and returns its claims.
    pub async fn validate(&self, token: &str) -> Result<Value, ValidationError> {
        let parsed = self.parse(token)?;
        let key = self.provider.key(&parsed.kid).await.map_err(|e| match e {
            LookupError::UnknownKid { issuer } => ValidationError::UnknownKid { issuer },
            LookupError::Unavailable { issuer, source } => {
                ValidationError::KeysUnavailable { issuer, source }
            }
        })?;
        if !key.accepts(parsed.alg) {
            return Err(ValidationError::KeyMismatch {
                alg: format!("{:?}", parsed.alg),
                key: key.kind().to_string(),
            });
        }
        let signature = decode_part(parsed.signature)
            .ok_or(ValidationError::Malformed { reason: "the signature is not base64url without padding" })?;
        if !key.verify(parsed.alg, parsed.signing_input.as_bytes(), &signature) {
            return Err(ValidationError::BadSignature);
        }
        let payload = decode_part(parsed.payload)
            .ok_or(ValidationError::Malformed { reason: "the payload is not base64url without padding" })?;
        let claims = match strict_json::parse(&payload) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(ValidationError::MalformedClaims { reason: "not a JSON object" }),
            Err(StrictError::Duplicate) => return Err(ValidationError::DuplicateMember { part: "claims" }),
            Err(StrictError::Syntax) => return Err(ValidationError::MalformedClaims { reason: "not JSON" }),
        };
        self.check_claims(&claims)?;
        Ok(Value::Object(claims))
    }

    /// Validates `token` and deserializes its claims into `T`.
    pub async fn validate_as<T: DeserializeOwned>(&self, token: &str) -> Result<T, ValidationError> {
        let claims = self.validate(token).await?;
        serde_path_to_error::deserialize(claims).map_err(|e| ValidationError::ClaimsType {
            path: e.path().to_string().chars().take(200).collect(),
        })
    }

    fn parse<'a>(&self, token: &'a str) -> Result<Parsed<'a>, ValidationError> {
        if token.len() > self.config.max_token_bytes {
            return Err(ValidationError::TooLarge { len: token.len(), limit: self.config.max_token_bytes });
        }
        let mut parts = token.splitn(4, '.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ValidationError::Malformed { reason: "expected three parts separated by dots" });
        };
        if header.is_empty() || payload.is_empty() {
            return Err(ValidationError::Malformed { reason: "the header or the payload is empty" });
        }
        if !is_base64url(payload) || !is_base64url(signature) {
            return Err(ValidationError::Malformed { reason: "a part is not base64url without padding" });
        }
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let header_bytes = decode_part(header)
            .ok_or(ValidationError::Malformed { reason: "the header is not base64url without padding" })?;
        let header = match strict_json::parse(&header_bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(ValidationError::MalformedHeader { reason: "not a JSON object" }),
            Err(StrictError::Duplicate) => return Err(ValidationError::DuplicateMember { part: "header" }),
            Err(StrictError::Syntax) => return Err(ValidationError::MalformedHeader { reason: "not JSON" }),
        };
        if let Some(name) = FORBIDDEN_HEADERS.iter().find(|name| header.contains_key(**name)) {
            return Err(ValidationError::ForbiddenHeader { name });
        }
        let alg = match header.get("alg") {
            None => return Err(ValidationError::MalformedHeader { reason: "no alg" }),
            Some(Value::String(name)) => name,
            Some(_) => return Err(ValidationError::MalformedHeader { reason: "alg is not a string" }),
        };
        let alg = match alg.parse::<Algorithm>() {
            Ok(a) if self.config.algorithms.contains(&a) => a,
            parsed => {
                let shown = match parsed {
                    Ok(a) => format!("{a:?}"),
                    Err(_) if alg.eq_ignore_ascii_case("none") => "none".to_owned(),
                    Err(_) => "(unrecognised)".to_owned(),
                };
                return Err(ValidationError::AlgorithmNotAllowed {
                    alg: shown,
                    issuer: self.issuer().to_owned(),
                    pinned: self.pinned.clone(),
                });
            }
        };
        if let Some(required) = &self.typ {
            let ok = matches!(header.get("typ"), Some(Value::String(t)) if normalise_typ(t) == *required);
            if !ok {
                return Err(ValidationError::WrongType {
                    expected: self.config.required_typ.clone().unwrap_or_default(),
                });
            }
        }
        let kid = match header.get("kid") {
            None => return Err(ValidationError::MissingKid),
            Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_BYTES => kid.clone(),
            Some(_) => return Err(ValidationError::InvalidKid { max: MAX_KID_BYTES }),
        };
        Ok(Parsed { alg, kid, signing_input, payload, signature })
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), ValidationError> {
        match claims.get("iss") {
            None => return Err(ValidationError::MissingClaim { name: "iss" }),
            Some(Value::String(iss)) if iss == self.issuer() => {}
            Some(Value::String(_)) => {
                return Err(ValidationError::WrongIssuer { expected: self.issuer().to_owned() });
            }
            Some(_) => return Err(ValidationError::MalformedClaims { reason: "`iss` is not a string" }),
        }
        let aud_malformed =
            ValidationError::MalformedClaims { reason: "`aud` is not a string or an array of strings" };
        let named = |a: &str| self.config.audiences.iter().any(|ours| ours == a);
        let aud_ok = match claims.get("aud") {
            None => return Err(ValidationError::MissingClaim { name: "aud" }),
            Some(Value::String(a)) => named(a),
            Some(Value::Array(items)) => {
                let mut any = false;
                for item in items {
                    match item {
                        Value::String(a) => any |= named(a),
                        _ => return Err(aud_malformed),
                    }
                }
                any
            }
            Some(_) => return Err(aud_malformed),
        };
        if !aud_ok {
            return Err(ValidationError::WrongAudience { expected: self.config.audiences.clone() });
        }
        let now = unix_secs_f64(self.provider.clock().now());
        let leeway = self.config.leeway.as_secs_f64();
        let leeway_secs = self.config.leeway.as_secs();
        let exp = match numeric(claims, "exp", "`exp` is not a number")? {
            Some(exp) => exp,
            None => return Err(ValidationError::MissingClaim { name: "exp" }),
        };
        if now >= exp + leeway {
            return Err(ValidationError::Expired { ago_secs: (now - exp).max(0.0) as u64, leeway_secs });
        }
        for (claim, reason) in [("nbf", "`nbf` is not a number"), ("iat", "`iat` is not a number")] {
            if let Some(t) = numeric(claims, claim, reason)?
                && t > now + leeway
            {
                return Err(ValidationError::NotYetValid {
                    claim,
                    ahead_secs: (t - now) as u64,
                    leeway_secs,
                });
            }
        }
        Ok(())
    }
}

fn is_base64url(part: &str) -> bool {
    part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Strict base64url: the URL-safe alphabet, no padding, canonical trailing bits.
fn decode_part(part: &str) -> Option<Vec<u8>> {
    if !is_base64url(part) {
        return None;
    }
    URL_SAFE_NO_PAD.decode(part).ok()
}

/// A NumericDate claim: a finite, non-negative JSON number.
fn numeric(
    claims: &Map<String, Value>,
    name: &str,
    reason: &'static str,
) -> Result<Option<f64>, ValidationError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(t)),
            _ => Err(ValidationError::MalformedClaims { reason }),
        },
        Some(_) => Err(ValidationError::MalformedClaims { reason }),
    }
}

/// `typ` comparison per RFC 8725 §3.11 / RFC 7515 §4.1.9: case-insensitive, and
/// `application/` may be left out.
fn normalise_typ(typ: &str) -> String {
    let lower = typ.trim().to_ascii_lowercase();
    lower.strip_prefix("application/").map(str::to_owned).unwrap_or(lower)
}

/// An asymmetric JOSE algorithm by its name, as configurations pin them (`ES256`, `EdDSA`,
/// `PS256`…); `None` for anything else, symmetric ones (`HS256`) and `none` included.
pub fn algorithm_by_name(name: &str) -> Option<jsonwebtoken::Algorithm> {
    use jsonwebtoken::Algorithm;
    Some(match name {
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::config::ProviderConfig;

    fn validator(config: ValidatorConfig) -> Result<Validator, ConfigError> {
        let mut provider = ProviderConfig::new("https://issuer.test", "https://issuer.test/jwks");
        provider.trust = crate::TrustRoots::from_pem(include_bytes!("test-anchor.pem"), "test")?;
        let provider = Provider::new(provider)?;
        Validator::new(provider, config)
    }

    fn es256() -> Validator {
        validator(ValidatorConfig::new(["kms"], &[Algorithm::ES256]).with_required_typ("at+jwt")).unwrap()
    }

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn configuration_refuses_symmetric_empty_and_out_of_range() {
        assert!(matches!(
            validator(ValidatorConfig::new(["kms"], &[Algorithm::ES256, Algorithm::HS256])),
            Err(ConfigError::SymmetricAlgorithm { alg: Algorithm::HS256 })
        ));
        assert!(matches!(
            validator(ValidatorConfig::new(["kms"], &[])),
            Err(ConfigError::NoAlgorithms { .. })
        ));
        assert!(matches!(
            validator(ValidatorConfig::new(Vec::<String>::new(), &[Algorithm::ES256])),
            Err(ConfigError::NoAudience { .. })
        ));
        let mut c = ValidatorConfig::new(["kms"], &[Algorithm::ES256]);
        c.leeway = Duration::from_secs(3600);
        assert!(matches!(validator(c), Err(ConfigError::Limit { field: "leeway", .. })));
        let c = ValidatorConfig::new(["kms"], &[Algorithm::ES256]).with_required_typ(" application/ ");
        assert!(validator(c).is_err());
    }

    #[test]
    fn typ_comparison_follows_rfc_8725() {
        assert_eq!(normalise_typ("application/AT+JWT"), "at+jwt");
        assert_eq!(normalise_typ("at+jwt"), "at+jwt");
        assert_eq!(normalise_typ("JWT"), "jwt");
    }

    #[test]
    fn header_checks_come_before_any_key_lookup() {
        let v = es256();
        let payload = b64(r#"{"iss":"https://issuer.test"}"#);
        let cases = [
            (r#"{"alg":"none","typ":"at+jwt","kid":"k"}"#, "alg_not_allowed"),
            (r#"{"alg":"HS256","typ":"at+jwt","kid":"k"}"#, "alg_not_allowed"),
            (r#"{"alg":"ES256","typ":"at+jwt","kid":"k","jku":"https://evil"}"#, "forbidden_header"),
            (r#"{"alg":"ES256","typ":"at+jwt","kid":"k","crit":["exp"]}"#, "forbidden_header"),
            (r#"{"alg":"ES256","typ":"JWT","kid":"k"}"#, "wrong_type"),
            (r#"{"alg":"ES256","kid":"k"}"#, "wrong_type"),
            (r#"{"alg":"ES256","typ":"at+jwt"}"#, "missing_kid"),
            (r#"{"alg":"ES256","typ":"at+jwt","kid":7}"#, "invalid_kid"),
            (r#"{"alg":"ES256","alg":"ES256","typ":"at+jwt","kid":"k"}"#, "duplicate_member"),
            (r#"["alg"]"#, "malformed_header"),
            (r#"{"typ":"at+jwt","kid":"k"}"#, "malformed_header"),
        ];
        for (header, expected) in cases {
            let token = format!("{}.{payload}.AAAA", b64(header));
            let err = v.parse(&token).err().unwrap_or_else(|| panic!("{header} was accepted"));
            assert_eq!(err.kind().as_str(), expected, "{header}: {err}");
            assert!(!err.to_string().contains(&token), "messages never quote the token");
        }
        let ok = format!("{}.{payload}.AAAA", b64(r#"{"alg":"ES256","typ":"application/AT+JWT","kid":"k"}"#));
        assert_eq!(v.parse(&ok).map(|p| p.kid).ok().as_deref(), Some("k"));
    }

    #[test]
    fn shape_checks() {
        let v = es256();
        let h = b64(r#"{"alg":"ES256","typ":"at+jwt","kid":"k"}"#);
        for token in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "a.b.c.d.e",
            ".b.c",
            "a..c",
            &format!("{h}=.e30.AA"),
            &format!("{h}.e30+.AA"),
        ] {
            let err = v.parse(token).err().unwrap_or_else(|| panic!("{token:?} was accepted"));
            assert_eq!(err.kind().as_str(), "malformed", "{token:?}: {err}");
        }
        let big = "a".repeat(9000);
        assert_eq!(v.parse(&big).err().map(|e| e.kind().as_str()), Some("too_large"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn parsing_never_panics_on_any_text(token in ".{0,300}") {
            let _ = es256().parse(&token);
        }

        #[test]
        fn parsing_never_panics_on_dotted_base64(parts in proptest::collection::vec("[A-Za-z0-9_=+/-]{0,80}", 0..6)) {
            let _ = es256().parse(&parts.join("."));
        }

        #[test]
        fn parsing_never_panics_on_json_headers(header in "\\{.{0,120}\\}") {
            let token = format!("{}.e30.AA", b64(&header));
            let _ = es256().parse(&token);
        }
    }
}
