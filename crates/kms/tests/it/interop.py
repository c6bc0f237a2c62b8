"""Independent JOSE oracle for the KMS tests (jwcrypto, which shares no code with us).

Reads a JSON request on stdin:
  {"oct": <base64url AES-256 key>, "jwes": [<compact or flattened JSON JWE>...],
   "jwss": [{"jws": <compact>, "jwk": <public JWK>}...]}
Decrypts every JWE with the key and verifies every JWS with its JWK, then makes objects of its
own for the Rust side to check. Prints one JSON document; exits non-zero on any failure.
"""
import json
import sys

from jwcrypto import jwe, jwk, jws
from jwcrypto.common import json_encode

req = json.load(sys.stdin)
key = jwk.JWK(kty="oct", k=req["oct"])

plaintexts = []
for token in req["jwes"]:
    t = jwe.JWE()
    t.allowed_algs = ["dir", "A256GCM"]
    t.deserialize(token, key=key)
    plaintexts.append(t.payload.decode())

payloads = []
for item in req["jwss"]:
    s = jws.JWS()
    s.allowed_algs = ["ES256", "EdDSA", "PS256"]
    s.deserialize(item["jws"])
    s.verify(jwk.JWK(**item["jwk"]))
    payloads.append(s.payload.decode())

theirs = jwe.JWE(b"from python", json_encode({"alg": "dir", "enc": "A256GCM", "kid": "p/1"}))
theirs.add_recipient(key)

signed = []
for alg, params in [("ES256", {"kty": "EC", "crv": "P-256"}),
                    ("EdDSA", {"kty": "OKP", "crv": "Ed25519"}),
                    ("PS256", {"kty": "RSA", "size": 2048})]:
    k = jwk.JWK.generate(**params)
    s = jws.JWS(b"signed by python")
    s.allowed_algs = [alg]
    s.add_signature(k, None, json_encode({"alg": alg, "kid": "py/1"}))
    signed.append({"alg": alg, "jws": s.serialize(compact=True), "jwk": k.export_public(as_dict=True)})

json.dump({"plaintexts": plaintexts, "payloads": payloads,
           "their_jwe": theirs.serialize(compact=True), "their_jws": signed}, sys.stdout)
