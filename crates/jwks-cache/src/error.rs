//! The crate's errors: configuration ([`ConfigError`]), fetching a key set ([`FetchError`]),
//! looking a key up ([`LookupError`]) and validating a token ([`ValidationError`]).
//!
//! Messages say what failed, on what input (issuer, URL, claim) and what to do. They never
//! contain a token, a claim value taken from a token, or any other attacker-supplied text
//! beyond bounded, known names.

use std::path::PathBuf;
use std::time::Duration;

/// A provider, validator or registry could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The JWKS URL does not parse.
    #[error("JWKS URL {url:?} does not parse ({reason}); give an absolute https:// URL")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The JWKS URL is not `https://`.
    #[error(
        "JWKS URL {url} is not https://; keys fetched over plain HTTP can be replaced in transit, so only https:// is accepted"
    )]
    InsecureUrl {
        /// The URL as given.
        url: String,
    },
    /// The JWKS URL carries a user name or password.
    #[error(
        "JWKS URL for issuer {issuer} carries credentials; JWKS endpoints are public, remove the user:password@ part"
    )]
    CredentialsInUrl {
        /// The provider's issuer.
        issuer: String,
    },
    /// No allowed domain was configured.
    #[error(
        "no allowed domains for issuer {issuer}; list the JWKS host (for example {host:?}) in allowed_domains"
    )]
    NoAllowedDomains {
        /// The provider's issuer.
        issuer: String,
        /// The JWKS URL's host, as a hint.
        host: String,
    },
    /// An allowed-domain entry is malformed.
    #[error("allowed domain {entry:?} is not a host name, an IP address or `*.` followed by a domain")]
    InvalidAllowedDomain {
        /// The entry as given.
        entry: String,
    },
    /// The JWKS URL's host is not in the allowed-domain list.
    #[error(
        "JWKS host {host} is not in the allowed domains {allowed:?}; add it there if this issuer really publishes its keys on {host}"
    )]
    DomainNotAllowed {
        /// The URL's host.
        host: String,
        /// The configured list.
        allowed: Vec<String>,
    },
    /// An SPKI pin is malformed.
    #[error(
        "SPKI pin {pin:?} is not a base64 SHA-256 digest (44 characters, 32 bytes); compute it with `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`"
    )]
    InvalidPin {
        /// The pin as given.
        pin: String,
    },
    /// A limit or duration is out of range, or two of them contradict each other.
    #[error("configuration {field}: {reason}")]
    Limit {
        /// The field (`min_ttl`, `max_keys`, ...).
        field: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The validator was given no algorithms.
    #[error(
        "no algorithms are pinned for issuer {issuer}; pin the ones the issuer signs with (for example ES256)"
    )]
    NoAlgorithms {
        /// The provider's issuer.
        issuer: String,
    },
    /// The validator was given a symmetric (HMAC) algorithm.
    #[error(
        "algorithm {alg:?} is symmetric; a JWKS publishes public keys, so only asymmetric algorithms (ES256, ES384, RS*, PS*, EdDSA) can be pinned"
    )]
    SymmetricAlgorithm {
        /// The algorithm.
        alg: jsonwebtoken::Algorithm,
    },
    /// The validator was given no audience.
    #[error(
        "no audience configured for issuer {issuer}; a resource server must name itself (the `aud` its tokens carry)"
    )]
    NoAudience {
        /// The provider's issuer.
        issuer: String,
    },
    /// The root store could not be read or is empty.
    #[error("trust roots {origin}: {detail}")]
    Roots {
        /// Where the roots came from (a file, or `system`).
        origin: String,
        /// What went wrong.
        detail: String,
    },
    /// A root store file could not be read.
    #[error("cannot read the CA bundle {path}; check the path and its permissions")]
    RootsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS or HTTP client could not be built.
    #[error("cannot build the HTTPS client for issuer {issuer}: {detail}")]
    Client {
        /// The provider's issuer.
        issuer: String,
        /// What went wrong.
        detail: String,
    },
    /// The registry already has a provider for this issuer.
    #[error("issuer {issuer} is already registered; remove it first or use the existing provider")]
    DuplicateIssuer {
        /// The issuer.
        issuer: String,
    },
}

/// Fetching or revalidating a key set failed. Cheap to clone, so every caller waiting on a
/// single-flight fetch gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The TCP connection could not be made, or broke.
    #[error("cannot reach {url}: {detail}; check DNS, routing and that the issuer is up")]
    Connect {
        /// The JWKS URL.
        url: String,
        /// The transport's description.
        detail: String,
    },
    /// The request did not complete in time.
    #[error("{url} did not answer within {after:?}; the issuer is slow or unreachable")]
    Timeout {
        /// The JWKS URL.
        url: String,
        /// The configured request timeout.
        after: Duration,
    },
    /// The TLS handshake failed (untrusted or invalid certificate, protocol error).
    #[error("TLS with {url} failed: {detail}; check that the trust roots contain the issuer's CA")]
    Tls {
        /// The JWKS URL.
        url: String,
        /// What rustls reported.
        detail: String,
    },
    /// The server's certificate chain is valid but its key matches none of the SPKI pins.
    #[error(
        "the certificate of {url} does not match any configured SPKI pin; if the issuer rotated its TLS key on purpose, add the new pin"
    )]
    PinMismatch {
        /// The JWKS URL.
        url: String,
    },
    /// A redirect was refused (to `http://`, to a domain not allowed, or too many).
    #[error("redirect from {url} refused: {reason}")]
    RedirectRefused {
        /// The JWKS URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with an unexpected status.
    #[error("{url} answered HTTP {status}; expected 200 with a JWK set (or 304 when revalidating)")]
    Status {
        /// The JWKS URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body exceeded the configured size limit (reading stopped there).
    #[error(
        "the key set from {url} exceeds {limit} bytes; reading stopped there. Raise max_response_bytes if the issuer really publishes that much"
    )]
    TooLarge {
        /// The JWKS URL.
        url: String,
        /// The configured limit.
        limit: usize,
    },
    /// The key set has more keys than allowed.
    #[error(
        "the key set from {url} has {count} keys, more than the limit of {limit}; raise max_keys if that is expected"
    )]
    TooManyKeys {
        /// The JWKS URL.
        url: String,
        /// Keys in the set.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The body is not a JWK set.
    #[error("the body from {url} is not a JWK set: {detail}")]
    InvalidJwks {
        /// The JWKS URL.
        url: String,
        /// The parser's description (position, not content).
        detail: String,
    },
    /// Reading the body failed midway.
    #[error("reading the body from {url} failed: {detail}")]
    Body {
        /// The JWKS URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The server answered 304 Not Modified to a request the cache cannot revalidate.
    #[error(
        "{url} answered 304 Not Modified but the cache holds no matching copy; the issuer's validators (ETag/Last-Modified) are inconsistent"
    )]
    UnexpectedNotModified {
        /// The JWKS URL.
        url: String,
    },
    /// The refresh worker stopped without an answer (it panicked or the runtime shut down).
    #[error(
        "the refresh of {url} stopped without an answer ({detail}); the next lookup or refresh starts a new one"
    )]
    Worker {
        /// The JWKS URL.
        url: String,
        /// What happened.
        detail: String,
    },
}

impl FetchError {
    /// Whether trying again soon may help (network trouble, timeouts, 5xx, 408, 429).
    /// Certificate, pin, redirect, size and format errors are not retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Body { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

/// A key lookup by `kid` failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The issuer's current key set has no key with this `kid` (a refetch was made or was
    /// rate-limited).
    #[error(
        "issuer {issuer} has no signing key with the token's kid (its key set was refetched, or a refetch was rate-limited); the token is forged, very old, or signed by a key not yet published"
    )]
    UnknownKid {
        /// The issuer.
        issuer: String,
    },
    /// No usable key set: the cache is empty or past its stale window, and fetching failed.
    #[error("the keys of issuer {issuer} are unavailable")]
    Unavailable {
        /// The issuer.
        issuer: String,
        /// Why the last fetch failed.
        #[source]
        source: FetchError,
    },
}

/// A stable, comparable name for what a [`ValidationError`] is about; handy for metrics,
/// tests and mapping to HTTP answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValidationErrorKind {
    /// [`ValidationError::TooLarge`].
    TooLarge,
    /// [`ValidationError::Malformed`].
    Malformed,
    /// [`ValidationError::MalformedHeader`].
    MalformedHeader,
    /// [`ValidationError::DuplicateMember`].
    DuplicateMember,
    /// [`ValidationError::AlgorithmNotAllowed`].
    AlgorithmNotAllowed,
    /// [`ValidationError::ForbiddenHeader`].
    ForbiddenHeader,
    /// [`ValidationError::MissingKid`].
    MissingKid,
    /// [`ValidationError::InvalidKid`].
    InvalidKid,
    /// [`ValidationError::UnknownKid`].
    UnknownKid,
    /// [`ValidationError::KeysUnavailable`].
    KeysUnavailable,
    /// [`ValidationError::KeyMismatch`].
    KeyMismatch,
    /// [`ValidationError::BadSignature`].
    BadSignature,
    /// [`ValidationError::MalformedClaims`].
    MalformedClaims,
    /// [`ValidationError::MissingClaim`].
    MissingClaim,
    /// [`ValidationError::Expired`].
    Expired,
    /// [`ValidationError::NotYetValid`].
    NotYetValid,
    /// [`ValidationError::WrongIssuer`].
    WrongIssuer,
    /// [`ValidationError::WrongAudience`].
    WrongAudience,
    /// [`ValidationError::WrongType`].
    WrongType,
    /// [`ValidationError::ClaimsType`].
    ClaimsType,
}

impl ValidationErrorKind {
    /// The snake_case name (`alg_not_allowed`, `expired`, ...), stable across releases.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::MalformedHeader => "malformed_header",
            Self::DuplicateMember => "duplicate_member",
            Self::AlgorithmNotAllowed => "alg_not_allowed",
            Self::ForbiddenHeader => "forbidden_header",
            Self::MissingKid => "missing_kid",
            Self::InvalidKid => "invalid_kid",
            Self::UnknownKid => "unknown_kid",
            Self::KeysUnavailable => "keys_unavailable",
            Self::KeyMismatch => "key_mismatch",
            Self::BadSignature => "bad_signature",
            Self::MalformedClaims => "malformed_claims",
            Self::MissingClaim => "missing_claim",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongType => "wrong_type",
            Self::ClaimsType => "claims_type",
        }
    }
}

impl std::fmt::Display for ValidationErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token was refused. The message names the check that failed; it never quotes the token
/// or values taken from it (beyond algorithm names from a fixed list).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The token is longer than the configured limit (checked before anything is parsed).
    #[error("the token is {len} bytes, over the limit of {limit}; it was refused unread")]
    TooLarge {
        /// The token's length.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The token is not a compact JWS (three base64url parts).
    #[error("the token is not a compact JWS: {reason}")]
    Malformed {
        /// What is wrong with its shape.
        reason: &'static str,
    },
    /// The JOSE header is not a JSON object of the expected shape.
    #[error("the token's header is malformed: {reason}")]
    MalformedHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// A JSON object in the header or claims names the same member twice (parsers disagree on
    /// which one wins, so such tokens are refused).
    #[error("the token's {part} names a member twice; such tokens are ambiguous and refused")]
    DuplicateMember {
        /// `header` or `claims`.
        part: &'static str,
    },
    /// The header's `alg` is not pinned for this issuer.
    #[error(
        "algorithm {alg} is not allowed for issuer {issuer} (pinned: {pinned}); algorithms come from configuration, never from the token"
    )]
    AlgorithmNotAllowed {
        /// The header's algorithm if it is a known name, else `unrecognised`.
        alg: String,
        /// The issuer.
        issuer: String,
        /// The pinned algorithms.
        pinned: String,
    },
    /// The header carries a member this validator refuses (`jku`, `x5u`, `jwk`, `x5c`, `crit`).
    #[error(
        "the token's header carries `{name}`, which is refused: keys come only from the issuer's configured JWKS, and no critical extensions are supported"
    )]
    ForbiddenHeader {
        /// The member.
        name: &'static str,
    },
    /// The header has no `kid`.
    #[error("the token's header has no kid; tokens must name the key that signed them")]
    MissingKid,
    /// The header's `kid` is not a string or is too long.
    #[error("the token's kid is not a string of 1 to {max} bytes")]
    InvalidKid {
        /// The limit.
        max: usize,
    },
    /// No key with this `kid` in the issuer's key set.
    #[error("no key of issuer {issuer} has the token's kid")]
    UnknownKid {
        /// The issuer.
        issuer: String,
    },
    /// The issuer's keys are unavailable (nothing cached, or past the stale window).
    #[error("the keys of issuer {issuer} are unavailable, so no token of it can be validated")]
    KeysUnavailable {
        /// The issuer.
        issuer: String,
        /// Why fetching failed.
        #[source]
        source: FetchError,
    },
    /// The key named by `kid` cannot be used with the header's `alg`.
    #[error("the key named by the token's kid is a {key} key and cannot verify {alg}")]
    KeyMismatch {
        /// The header's algorithm.
        alg: String,
        /// What the key is (`EC P-256`, `RSA`, ...).
        key: String,
    },
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// The claims are not a JSON object, or a registered claim has the wrong type.
    #[error("the token's claims are malformed: {reason}")]
    MalformedClaims {
        /// What is wrong.
        reason: &'static str,
    },
    /// A required claim is missing.
    #[error("the token has no `{name}` claim, which is required")]
    MissingClaim {
        /// The claim.
        name: &'static str,
    },
    /// `exp` has passed (leeway included).
    #[error("the token expired {ago_secs} s ago (leeway {leeway_secs} s)")]
    Expired {
        /// How long ago, leeway not counted.
        ago_secs: u64,
        /// The configured leeway.
        leeway_secs: u64,
    },
    /// `nbf` (or `iat`) is in the future (leeway included).
    #[error(
        "the token is not valid yet: its `{claim}` is {ahead_secs} s in the future (leeway {leeway_secs} s)"
    )]
    NotYetValid {
        /// `nbf` or `iat`.
        claim: &'static str,
        /// How far ahead.
        ahead_secs: u64,
        /// The configured leeway.
        leeway_secs: u64,
    },
    /// `iss` is not the provider's issuer.
    #[error("the token's iss is not {expected}")]
    WrongIssuer {
        /// The expected issuer.
        expected: String,
    },
    /// `aud` names none of the configured audiences.
    #[error("the token's aud names none of {expected:?}")]
    WrongAudience {
        /// The configured audiences.
        expected: Vec<String>,
    },
    /// The header's `typ` is missing or not the required one.
    #[error("the token's typ is not {expected} (compared case-insensitively, `application/` prefix allowed)")]
    WrongType {
        /// The required type.
        expected: String,
    },
    /// The claims do not deserialize into the caller's type.
    #[error("the token's claims do not fit the expected type at `{path}`")]
    ClaimsType {
        /// The path of the offending member (member names only).
        path: String,
    },
}

impl ValidationError {
    /// What kind of refusal this is.
    pub fn kind(&self) -> ValidationErrorKind {
        use ValidationErrorKind as K;
        match self {
            Self::TooLarge { .. } => K::TooLarge,
            Self::Malformed { .. } => K::Malformed,
            Self::MalformedHeader { .. } => K::MalformedHeader,
            Self::DuplicateMember { .. } => K::DuplicateMember,
            Self::AlgorithmNotAllowed { .. } => K::AlgorithmNotAllowed,
            Self::ForbiddenHeader { .. } => K::ForbiddenHeader,
            Self::MissingKid => K::MissingKid,
            Self::InvalidKid { .. } => K::InvalidKid,
            Self::UnknownKid { .. } => K::UnknownKid,
            Self::KeysUnavailable { .. } => K::KeysUnavailable,
            Self::KeyMismatch { .. } => K::KeyMismatch,
            Self::BadSignature => K::BadSignature,
            Self::MalformedClaims { .. } => K::MalformedClaims,
            Self::MissingClaim { .. } => K::MissingClaim,
            Self::Expired { .. } => K::Expired,
            Self::NotYetValid { .. } => K::NotYetValid,
            Self::WrongIssuer { .. } => K::WrongIssuer,
            Self::WrongAudience { .. } => K::WrongAudience,
            Self::WrongType { .. } => K::WrongType,
            Self::ClaimsType { .. } => K::ClaimsType,
        }
    }

    /// Whether the fault is on the issuer's side (keys unavailable) rather than the token's:
    /// a service may answer 503 instead of 401 for these.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable { .. })
    }
}
