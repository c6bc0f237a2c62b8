//! Schema-only types: the wire formats of string values, named so the KMS's OpenAPI document
//! can say what the server accepts (patterns that match its decoders exactly; the KMS's unit
//! tests hold them to the decoders) and what it answers. Nothing is ever made of them: the wire
//! types' fields are `String`s whose schema they give (`#[schema(value_type = …)]`).

use serde::Serialize;
use utoipa::ToSchema;

/// Standard base64 (RFC 4648 §4) with padding and zero trailing bits: exactly what the
/// server decodes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    value_type = String,
    pattern = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$",
    example = "aGVsbG8gd29ybGQ="
)]
pub struct Base64(pub String);

/// Key material to wrap: 16 to 4096 bytes, a multiple of 8, in standard base64.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    value_type = String,
    pattern = "^(?:(?:[A-Za-z0-9+/]{32}){1,170}(?:[A-Za-z0-9+/]{10}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/]{21}[AQgw]==)?|[A-Za-z0-9+/]{21}[AQgw]==)$",
    example = "AAECAwQFBgcICQoLDA0ODw=="
)]
pub struct KeyMaterial(pub String);

/// RFC 3394 output: 24 to 4104 bytes, a multiple of 8, in standard base64.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    value_type = String,
    pattern = "^(?:(?:[A-Za-z0-9+/]{32}){1,170}(?:[A-Za-z0-9+/]{10}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/]{21}[AQgw]==)?|(?:[A-Za-z0-9+/]{32}){171})$",
    example = "H0jYvyNZ35mkMc4oijYqtvsMd3GU1PUV"
)]
pub struct WrappedKey(pub String);

/// A key version: `pool/version`, the version a whole number from 1 to 4294967295 without
/// leading zeros.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    value_type = String,
    pattern = "^[a-z0-9_-]{1,64}/(?:[1-9][0-9]{0,8}|[1-3][0-9]{9}|4[01][0-9]{8}|42[0-8][0-9]{7}|429[0-3][0-9]{6}|4294[0-8][0-9]{5}|42949[0-5][0-9]{4}|429496[0-6][0-9]{3}|4294967[01][0-9]{2}|42949672[0-8][0-9]|429496729[0-5])$",
    example = "payments/2"
)]
pub struct Kid(pub String);

/// A compact JWE (`dir` + `A256GCM`): base64url header, an empty encrypted key, a 12-byte
/// IV, the ciphertext and a 16-byte tag.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    value_type = String,
    pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{4}|[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])\\.\\.[A-Za-z0-9_-]{16}\\.(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?\\.[A-Za-z0-9_-]{21}[AQgw]$",
    example = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoicGF5bWVudHMvMiJ9..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA"
)]
pub struct CompactJwe(pub String);

/// A JWE: compact (a string), or flattened JSON (an object) when it carries AAD.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Jwe {
    /// Compact serialization.
    Compact(CompactJwe),
    /// Flattened JSON serialization.
    Flattened(crate::FlattenedJwe),
}

/// A compact JWS: base64url header, payload (possibly empty) and signature.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    value_type = String,
    pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{4}|[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])\\.(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?\\.(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$",
    example = "eyJhbGciOiJFUzI1NiIsImtpZCI6InNpZ25pbmcvMiJ9.aGVsbG8.AAAA"
)]
pub struct CompactJws(pub String);

/// A pool name: 1 to 64 of `a-z 0-9 - _`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "payments")]
pub struct PoolName(pub String);

/// A database-realm user name: 1 to 64 of `A-Z a-z 0-9 . _ @ -`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = String, pattern = "^[A-Za-z0-9._@-]{1,64}$", example = "ops-alice")]
pub struct Username(pub String);

/// A tenant: a UUIDv4 generated when the environment is created.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = String, example = "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10")]
pub struct TenantId(pub String);

/// A set of scopes, closed under the hierarchy.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Vec<crate::Scope>)]
pub struct Scopes(pub Vec<crate::Scope>);
