//! The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`.
//!
//! utoipa derives the operations, parameters and bodies from the handlers in [`crate::api`];
//! this module completes the document with what the annotations cannot say well, so that it
//! tells the truth about every answer:
//!
//! * every error status each operation can answer ([`ERRORS`]), each an RFC 9457 problem
//!   document (`application/problem+json`) whose `status` equals the HTTP status, with
//!   `WWW-Authenticate` on 401 and `Retry-After` on 429 (and on 503 when a realm is down);
//! * both security schemes (Basic accounts, Identity's Bearer tokens), either of which will do;
//! * links from the operations that produce a JOSE object or a wrapped key to the one that
//!   consumes it (encrypt → decrypt, sign → verify, wrap → unwrap), for stateful testing.
//!
//! It must not describe anything the server does not do: the schemathesis run in
//! `tests/it/fuzz_openapi.rs` checks every answer against this document.

use serde_json::{Value, json};
use utoipa::OpenApi as _;

/// Every error status each operation can answer, by operation id (the handler's name). A unit
/// test checks that the table and the operations match both ways.
///
/// What decides them: authentication (401, 429; 503 when a realm or Identity cannot be asked),
/// the scope (403), a path parameter that is not a pool name or a version (400), a JSON body
/// that does not parse (400), is too large (413), is not `application/json` (415) or does not
/// fit the schema (422), what the key service says (400 bad input, 404 no such pool, version or
/// tenant, 409 already exists / disabled / the pool's algorithm does not do this), and 500 for
/// a storage failure or a bug (nothing in the body; the log has it).
pub const ERRORS: &[(&str, &[u16])] = &[
    ("whoami", &[401, 429, 500, 503]),
    ("list_pools", &[401, 403, 429, 500, 503]),
    ("create_pool", &[400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503]),
    ("get_pool", &[400, 401, 403, 404, 429, 500, 503]),
    ("rotate", &[400, 401, 403, 404, 409, 429, 500, 503]),
    ("enable", &[400, 401, 403, 404, 429, 500, 503]),
    ("disable", &[400, 401, 403, 404, 429, 500, 503]),
    ("version_jwk", &[400, 401, 403, 404, 409, 429, 500, 503]),
    ("jwks", &[401, 403, 429, 500, 503]),
    ("encrypt", &[400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503]),
    ("datakey", &[400, 401, 403, 404, 409, 429, 500, 503]),
    ("decrypt", &[400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503]),
    ("sign", &[400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503]),
    ("verify", &[400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503]),
    ("wrap", &[400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503]),
    ("unwrap", &[400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503]),
    ("create_user", &[400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503]),
];

/// The reusable error responses (`#/components/responses/<name>`), by status.
fn error_response(status: u16) -> Option<(&'static str, Value)> {
    let (name, description) = match status {
        400 => (
            "BadRequest",
            "The request is malformed: `bad-request` (a path parameter, base64, JSON syntax, key \
             material of the wrong length), `invalid-jose` (a JOSE object that is malformed or \
             names another algorithm), `crypto-check-failed` (it does not decrypt or unwrap \
             under the key it names).",
        ),
        401 => (
            "Unauthorized",
            "No usable credentials: `unauthorized` (both challenges, Basic and Bearer) or \
             `invalid-token` (a Bearer token that is not valid).",
        ),
        403 => (
            "Forbidden",
            "`forbidden`: the caller lacks the scope (the detail names it), or, creating a \
             user, is not a tenant admin or admin, or names a role it may not grant.",
        ),
        404 => (
            "NotFound",
            "`not-found`: no such pool or key version for the caller's tenant (another tenant's \
             pool answers the same), or the caller's tenant does not exist in the KMS.",
        ),
        409 => (
            "Conflict",
            "The state refuses it: `conflict` (the pool, or a user of that name in any realm, \
             exists already), `key-disabled` (the version, or every version, is disabled), \
             `wrong-algorithm` (the pool's algorithm does not do this operation), \
             `no-database-realm` (users cannot be created: no database realm is configured).",
        ),
        413 => ("PayloadTooLarge", "`payload-too-large`: the body exceeds `server.limits.body_bytes`."),
        415 => ("UnsupportedMediaType", "`unsupported-media-type`: send `Content-Type: application/json`."),
        422 => (
            "Unprocessable",
            "`unprocessable`: the JSON parses but does not fit the request schema (a missing or \
             unknown member, a wrong type, an unknown algorithm).",
        ),
        429 => (
            "TooManyRequests",
            "`too-many-failed-logins`: too many failed logins for this user; retry after \
             `Retry-After` seconds.",
        ),
        500 => {
            ("Internal", "`internal`: a storage failure or a bug. The body says nothing more; the log does.")
        }
        503 => (
            "Unavailable",
            "`unavailable`: a realm or Identity cannot be asked (with `Retry-After`), or the \
             request took longer than `server.limits.request_timeout`; \
             `database-unavailable`: the database cannot be reached (with `Retry-After`).",
        ),
        _ => return None,
    };
    let problem = json!({
        "allOf": [
            { "$ref": "#/components/schemas/ProblemDoc" },
            { "type": "object", "properties": { "status": { "const": status } } }
        ]
    });
    let mut response = json!({
        "description": description,
        "content": { service_kit::problem::CONTENT_TYPE: { "schema": problem } }
    });
    let seconds = json!({ "type": "string", "pattern": "^[0-9]+$" });
    let headers = match status {
        401 => Some(json!({ "WWW-Authenticate": {
            "description": "The challenges: `Basic realm=\"kms\", charset=\"UTF-8\"` and \
                            `Bearer realm=\"kms\"`; for an invalid token only \
                            `Bearer realm=\"kms\", error=\"invalid_token\"`.",
            "required": true,
            "schema": { "type": "string", "pattern": "^(?:Basic|Bearer) realm=\"kms\"" }
        }})),
        429 => Some(json!({ "Retry-After": {
            "description": "Seconds until the failure window ends.",
            "required": true,
            "schema": seconds
        }})),
        503 => Some(json!({ "Retry-After": {
            "description": "Seconds to wait (absent after a request timeout).",
            "schema": seconds
        }})),
        _ => None,
    };
    if let Some(headers) = headers {
        response["headers"] = headers;
    }
    Some((name, response))
}

/// Links from an operation's success to the operation that consumes its result.
fn links(operation_id: &str) -> Option<Value> {
    match operation_id {
        "encrypt" => Some(json!({ "Decrypt": {
            "operationId": "decrypt",
            "requestBody": { "jwe": "$response.body#/jwe" },
            "description": "The JWE decrypts to the plaintext."
        }})),
        "datakey" => Some(json!({ "DecryptDataKey": {
            "operationId": "decrypt",
            "requestBody": { "jwe": "$response.body#/ciphertext" },
            "description": "The encrypted data key decrypts to its plaintext."
        }})),
        "sign" => Some(json!({ "Verify": {
            "operationId": "verify",
            "requestBody": { "jws": "$response.body#/jws" },
            "description": "The JWS verifies."
        }})),
        "wrap" => Some(json!({ "Unwrap": {
            "operationId": "unwrap",
            "requestBody": { "kid": "$response.body#/kid", "wrapped": "$response.body#/wrapped" },
            "description": "The wrapped key unwraps to the key material."
        }})),
        "create_pool" => Some(json!({ "GetPool": {
            "operationId": "get_pool",
            "parameters": { "pool": "$response.body#/name" },
            "description": "The new pool."
        }})),
        _ => None,
    }
}

/// The demo seed's pools (`deployments/kms/config/demo-seed.yml`), one of each algorithm and
/// then some, as the examples of every `pool` path parameter: "Try it out" and the fuzzer reach
/// real keys through them, including the combinations a pool refuses (a JWK of an AES pool).
const EXAMPLE_POOLS: [&str; 6] =
    ["payments", "documents", "signing", "signing-ed", "signing-rsa", "key-wrapping"];

/// Examples for the path parameters.
fn parameter_examples(name: &str) -> Option<Value> {
    let examples: serde_json::Map<String, Value> = match name {
        "pool" => EXAMPLE_POOLS.iter().map(|p| ((*p).to_owned(), json!({ "value": p }))).collect(),
        "version" => (1..=2).map(|v| (format!("v{v}"), json!({ "value": v }))).collect(),
        _ => return None,
    };
    Some(Value::Object(examples))
}

/// Public JWKs as [`crate::jose::public_jwk`] writes them (what `version_jwk` and `jwks` answer).
fn jwk_schemas() -> [(&'static str, Value); 2] {
    let b64u = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$";
    let coordinate = json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$" });
    let kid = json!({ "$ref": "#/components/schemas/Kid" });
    let common = |kty: &str, alg: &str, members: Value| {
        let mut properties = json!({
            "kty": { "const": kty }, "alg": { "const": alg }, "use": { "const": "sig" }, "kid": kid
        });
        let mut required = vec![json!("kty"), json!("alg"), json!("use"), json!("kid")];
        for (name, schema) in members.as_object().into_iter().flatten() {
            properties[name] = schema.clone();
            required.push(json!(name));
        }
        json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
    };
    let jwk = json!({
        "description": "The public key of a signing key version (RFC 7517).",
        "oneOf": [
            common("EC", "ES256", json!({ "crv": { "const": "P-256" }, "x": coordinate, "y": coordinate })),
            common("OKP", "EdDSA", json!({ "crv": { "const": "Ed25519" }, "x": coordinate })),
            common("RSA", "PS256", json!({
                "n": { "type": "string", "pattern": b64u, "minLength": 342 },
                "e": { "type": "string", "pattern": b64u, "minLength": 2 }
            })),
        ]
    });
    let jwks = json!({
        "description": "Every enabled version of every signing pool of the tenant.",
        "type": "object",
        "properties": { "keys": { "type": "array", "items": { "$ref": "#/components/schemas/Jwk" } } },
        "required": ["keys"],
        "additionalProperties": false
    });
    [("Jwk", jwk), ("Jwks", jwks)]
}

/// The complete document.
pub fn document() -> Value {
    let mut doc = match serde_json::to_value(crate::api::ApiDoc::openapi()) {
        Ok(doc) => doc,
        // utoipa's types serialise to JSON unconditionally; this arm exists so no panic can.
        Err(e) => {
            return json!({ "openapi": "3.1.0", "info": { "title": "Demo KMS", "description": e.to_string() } });
        }
    };
    complete(&mut doc);
    doc
}

fn complete(doc: &mut Value) {
    let mut used = std::collections::BTreeMap::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in
            paths.values_mut().filter_map(Value::as_object_mut).flat_map(|item| item.values_mut())
        {
            let Some(id) = operation.get("operationId").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let statuses = ERRORS.iter().find(|(op, _)| *op == id).map_or(&[][..], |(_, s)| *s);
            for parameter in
                operation.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten()
            {
                let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                if let (Some(examples), Some(parameter)) =
                    (parameter_examples(&name), parameter.as_object_mut())
                {
                    parameter.remove("example");
                    parameter.insert("examples".to_owned(), examples);
                }
                // utoipa calls a u32 `int32`, which is signed; the range says what it is.
                if name == "version"
                    && let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut)
                {
                    schema.remove("format");
                }
            }
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for &status in statuses {
                if let Some((name, response)) = error_response(status) {
                    responses.insert(
                        status.to_string(),
                        json!({ "$ref": format!("#/components/responses/{name}") }),
                    );
                    used.insert(name, response);
                }
            }
            let body = match id.as_str() {
                "version_jwk" => Some("Jwk"),
                "jwks" => Some("Jwks"),
                _ => None,
            };
            if let Some(schema) = body
                && let Some(content) = responses.get_mut("200").and_then(|r| r.get_mut("content"))
            {
                content["application/json"]["schema"] =
                    json!({ "$ref": format!("#/components/schemas/{schema}") });
            }
            if let Some(links) = links(&id) {
                for (status, response) in responses.iter_mut() {
                    if status.starts_with('2') {
                        response["links"] = links.clone();
                    }
                }
            }
        }
    }
    let components = &mut doc["components"];
    for (name, schema) in jwk_schemas() {
        components["schemas"][name] = schema;
    }
    components["responses"] = Value::Object(used.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_its_errors_and_every_entry_an_operation() {
        let doc = document();
        let mut ids = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                ids.push(id.to_owned());
                let (_, statuses) = ERRORS.iter().find(|(o, _)| *o == id).unwrap_or_else(|| panic!("{id}"));
                for status in *statuses {
                    let r = &op["responses"][status.to_string()]["$ref"];
                    assert!(
                        r.as_str().is_some_and(|r| r.starts_with("#/components/responses/")),
                        "{method} {id} {status}"
                    );
                }
                assert!(statuses.contains(&401) && statuses.contains(&500), "{id}");
            }
        }
        for (op, _) in ERRORS {
            assert!(ids.iter().any(|id| id == op), "stale entry {op}");
        }
        for (name, response) in doc["components"]["responses"].as_object().unwrap() {
            let schema = &response["content"]["application/problem+json"]["schema"];
            assert_eq!(schema["allOf"][0]["$ref"], "#/components/schemas/ProblemDoc", "{name}");
        }
        assert_eq!(
            doc["components"]["responses"]["Unauthorized"]["headers"]["WWW-Authenticate"]["required"],
            true
        );
    }

    fn pattern(doc: &Value, schema: &str) -> regex::Regex {
        let text =
            doc["components"]["schemas"][schema]["pattern"].as_str().unwrap_or_else(|| panic!("{schema}"));
        regex::Regex::new(text).unwrap()
    }

    /// Strings near the valid ones: every encoding of `lengths` bytes, each with its last three
    /// characters replaced by every base64 character and `=`, truncated, and extended.
    fn near(
        encode: impl Fn(&[u8]) -> String,
        lengths: impl Iterator<Item = usize>,
        alphabet: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for len in lengths {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let good = encode(&bytes);
            out.push(good.clone());
            out.push(format!("{good}="));
            out.push(format!("{good}A"));
            out.push(good.chars().skip(1).collect());
            for back in 1..=3.min(good.len()) {
                let at = good.len() - back;
                for c in alphabet.chars().chain(['=', '.', ' ']) {
                    let mut s = good.clone();
                    s.replace_range(at..at + 1, &c.to_string());
                    out.push(s);
                }
            }
        }
        out
    }

    const STANDARD: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    #[test]
    fn base64_patterns_accept_exactly_what_the_server_decodes() {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD as B64;
        let doc = document();
        let any = pattern(&doc, "Base64");
        for s in near(|b| B64.encode(b), 0..40, STANDARD) {
            assert_eq!(any.is_match(&s), B64.decode(&s).is_ok(), "{s:?}");
        }
        // Key material: what `KeyMaterial::wrap` takes; wrapped keys: what `unwrap` can open.
        let (material, wrapped) = (pattern(&doc, "KeyMaterial"), pattern(&doc, "WrappedKey"));
        for s in near(|b| B64.encode(b), (0..=4112).filter(|n| n % 8 == 0 || *n < 40), STANDARD) {
            let len = B64.decode(&s).ok().map(|b| b.len());
            let fits = |lo: usize, hi: usize| len.is_some_and(|n| (lo..=hi).contains(&n) && n % 8 == 0);
            assert_eq!(material.is_match(&s), fits(16, 4096), "material {len:?} {s:?}");
            assert_eq!(wrapped.is_match(&s), fits(24, 4104), "wrapped {len:?} {s:?}");
        }
    }

    #[test]
    fn the_flattened_jwe_patterns_are_the_parsers_base64url() {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
        let doc = document();
        let props = &doc["components"]["schemas"]["FlattenedJwe"]["properties"];
        let member = |name: &str| {
            // `aad` is nullable: its pattern sits beside the type list.
            regex::Regex::new(props[name]["pattern"].as_str().unwrap_or_else(|| panic!("{name}: {props}")))
                .unwrap()
        };
        let url = STANDARD.replace("+/", "-_");
        let (ciphertext, aad, iv, tag) = (member("ciphertext"), member("aad"), member("iv"), member("tag"));
        for s in near(|b| B64U.encode(b), 0..40, &url) {
            let decoded = B64U.decode(&s).ok().map(|b| b.len());
            assert_eq!(ciphertext.is_match(&s), decoded.is_some(), "{s:?}");
            assert_eq!(aad.is_match(&s), decoded.is_some(), "{s:?}");
            assert_eq!(iv.is_match(&s), decoded == Some(12), "{s:?}");
            assert_eq!(tag.is_match(&s), decoded == Some(16), "{s:?}");
        }
    }

    #[test]
    fn the_kid_pattern_is_kid_parse() {
        let kid = pattern(&document(), "Kid");
        let mut cases: Vec<String> =
            ["p/", "/1", "p/0", "p/01", "p/+1", "p/-1", "P/1", "p/1/2", "p 1", "p/1 ", "p1", "a-b_c/7"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        cases.push(format!("{}/1", "a".repeat(64)));
        cases.push(format!("{}/1", "a".repeat(65)));
        for n in [1u64, 9, 10, 999_999_999, 1_000_000_000, 3_999_999_999, 4_000_000_000, 4_199_999_999]
            .into_iter()
            .chain([4_289_999_999, 4_293_999_999, 4_294_899_999, 4_294_959_999, 4_294_966_999])
            .chain([4_294_967_199, 4_294_967_289, 4_294_967_295, 4_294_967_296, 4_294_967_300, 9_999_999_999])
            .chain([10_000_000_000])
        {
            for d in [0, 1] {
                cases.push(format!("p/{}", n + d));
                cases.push(format!("p/{}", n.saturating_sub(d)));
            }
        }
        for s in cases {
            assert_eq!(kid.is_match(&s), crate::jose::Kid::parse(&s).is_ok(), "{s:?}");
        }
        let pool = pattern(&document(), "PoolName");
        for s in ["", "a", "A", "a b", "a/b", "a.b", "é", "payments", "a-b_c9", "a\n"]
            .into_iter()
            .map(str::to_owned)
            .chain([&"a".repeat(64), &"a".repeat(65)].map(String::clone))
        {
            assert_eq!(pool.is_match(&s), crate::jose::valid_pool_name(&s), "{s:?}");
        }
    }

    #[test]
    fn two_forms_are_one_of_and_formats_are_named() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Jwe"]["oneOf"].as_array().map(Vec::len), Some(2), "{}", schemas["Jwe"]);
        let flattened = &schemas["FlattenedJwe"];
        let required: Vec<&str> =
            flattened["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        for member in ["protected", "iv", "ciphertext", "tag"] {
            assert!(required.contains(&member), "{member}: {flattened}");
        }
        assert_eq!(flattened["additionalProperties"], false);
        for name in ["Base64", "KeyMaterial", "WrappedKey", "Kid", "CompactJwe", "CompactJws", "PoolName"] {
            assert!(schemas[name]["pattern"].is_string(), "{name}: {}", schemas[name]);
        }
        assert_eq!(schemas["Jwk"]["oneOf"].as_array().map(Vec::len), Some(3));
        // Every example fits its own schema's pattern.
        for (name, schema) in schemas.as_object().unwrap() {
            if let (Some(p), Some(example)) = (schema["pattern"].as_str(), schema["example"].as_str()) {
                assert!(regex::Regex::new(p).unwrap().is_match(example), "{name}: {example}");
            }
        }
        let get_pool = &doc["paths"]["/api/v1/pools/{pool}"]["get"]["parameters"][0];
        assert_eq!(get_pool["examples"]["key-wrapping"]["value"], "key-wrapping", "{get_pool}");
        let version = &doc["paths"]["/api/v1/pools/{pool}/versions/{version}/jwk"]["get"]["parameters"][1];
        assert_eq!(version["schema"], json!({ "type": "integer", "minimum": 1, "maximum": 4294967295u64 }));
        let jwk = &doc["paths"]["/api/v1/pools/{pool}/versions/{version}/jwk"]["get"]["responses"]["200"];
        assert_eq!(jwk["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Jwk");
    }
}
