"""An independent client of Identity's token exchange: Python `requests` performs the exchange
(client authentication, RFC 8693 form), PyJWT verifies the transaction token against the JWKS.

Usage: exchange_oracle.py ISSUER PORT CA_BUNDLE ACTOR ACTOR_SECRET SUBJECT_TOKEN TRUST_DOMAIN
Prints one JSON document with the verified claims; exits non-zero on any failure.

The issuer's host name is resolved to loopback and its port to PORT here, the way a hosts-file
line would: TLS still verifies the name against our CA.
"""
import json
import socket
import sys
import urllib.parse

import jwt
import requests

ISSUER, PORT, CA, ACTOR, SECRET, SUBJECT, DOMAIN = sys.argv[1:8]
HOST = urllib.parse.urlsplit(ISSUER).hostname
ISSUER_PORT = urllib.parse.urlsplit(ISSUER).port
_getaddrinfo = socket.getaddrinfo


def _resolve(host, port, *args, **kwargs):
    if host == HOST and int(port) == ISSUER_PORT:
        return _getaddrinfo("127.0.0.1", int(PORT), *args, **kwargs)
    return _getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _resolve
session = requests.Session()
session.trust_env = False  # only our CA: REQUESTS_CA_BUNDLE must not stand in for it
session.verify = CA
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TXN = "urn:ietf:params:oauth:token-type:txn_token"

disco = session.get(f"{ISSUER}/.well-known/openid-configuration").json()
assert disco["issuer"] == ISSUER, disco
assert "urn:ietf:params:oauth:grant-type:token-exchange" in disco["grant_types_supported"], disco
jwks = session.get(disco["jwks_uri"]).json()

actor = session.post(disco["token_endpoint"], auth=(ACTOR, SECRET), data={"grant_type": "client_credentials"})
assert actor.status_code == 200, actor.text
answer = session.post(disco["token_endpoint"], auth=(ACTOR, SECRET), data={
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
    "subject_token": SUBJECT, "subject_token_type": ACCESS,
    "actor_token": actor.json()["access_token"], "actor_token_type": ACCESS,
    "requested_token_type": TXN, "audience": DOMAIN,
})
assert answer.status_code == 200, answer.text
assert answer.headers.get("cache-control") == "no-store", answer.headers
body = answer.json()
assert body["issued_token_type"] == TXN and body["token_type"] == "N_A", body
token = body["access_token"]
head = jwt.get_unverified_header(token)
assert head["typ"] == "txntoken+jwt" and head["alg"] == "ES256", head
key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == head["kid"])
claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=DOMAIN, issuer=ISSUER,
                    options={"require": ["exp", "iat", "iss", "sub", "aud", "txn"]})
assert claims["act"]["sub"] == ACTOR, claims
assert claims["exp"] - claims["iat"] <= 60, claims

# A wider scope than the subject's is refused the RFC 8693 way.
wider = session.post(disco["token_endpoint"], auth=(ACTOR, SECRET), data={
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
    "subject_token": SUBJECT, "subject_token_type": ACCESS,
    "actor_token": actor.json()["access_token"], "actor_token_type": ACCESS,
    "requested_token_type": TXN, "scope": "kms:admin",
})
assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope", wider.text
print(json.dumps(claims))
