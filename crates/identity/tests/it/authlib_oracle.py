"""Independent OAuth/OIDC clients (Authlib, PyJWT, requests) against a running Identity.

Usage: authlib_oracle.py ISSUER PORT CA_BUNDLE KMS_SECRET USERNAME PASSWORD
Prints one JSON document with what it observed; exits non-zero on any failure.

The issuer's host name is resolved to loopback and its port to PORT here, the way a hosts-file
line would: TLS still verifies `identity.demo.local` against our CA.
"""
import base64
import hashlib
import html.parser
import json
import socket
import sys
import urllib.parse

import jwt
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

ISSUER, PORT, CA, KMS_SECRET, USERNAME, PASSWORD = sys.argv[1:7]
ISSUER_HOST = urllib.parse.urlsplit(ISSUER).hostname
ISSUER_PORT = urllib.parse.urlsplit(ISSUER).port
REDIRECT = "https://app.demo.local/callback"
KMS = "https://kms.demo.local:8081"

_getaddrinfo = socket.getaddrinfo


def _resolve(host, port, *args, **kwargs):
    if host == ISSUER_HOST and int(port) == ISSUER_PORT:
        return _getaddrinfo("127.0.0.1", int(PORT), *args, **kwargs)
    return _getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _resolve


class HiddenFields(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields = {}
        self.action = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")


def verify(token, jwks, audience):
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    return jwt.decode(token, key.key, algorithms=["ES256"], audience=audience, issuer=ISSUER,
                      options={"require": ["exp", "iat", "iss", "sub", "aud"]})


out = {}
disco = requests.get(f"{ISSUER}/.well-known/openid-configuration", verify=CA).json()
assert disco["issuer"] == ISSUER, disco
jwks = requests.get(disco["jwks_uri"], verify=CA).json()

# 1. client_credentials, both client authentication methods.
for method in ("client_secret_basic", "client_secret_post"):
    cc = OAuth2Session("kms-service", KMS_SECRET, token_endpoint_auth_method=method)
    cc.verify = CA
    cc.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
    token = cc.fetch_token(disco["token_endpoint"], grant_type="client_credentials")
    claims = verify(token["access_token"], jwks, KMS)
    assert jwt.get_unverified_header(token["access_token"])["typ"] == "at+jwt"
    assert claims["client_id"] == "kms-service", claims
    out[f"client_credentials_{method}"] = claims["sub"]

# 2. authorization code + PKCE, driving the sign-in form like a browser.
spa = OAuth2Session("spa", redirect_uri=REDIRECT, scope="openid profile email",
                    code_challenge_method="S256", token_endpoint_auth_method="none")
spa.verify = CA
spa.trust_env = False
verifier = generate_token(64)
nonce = generate_token(24)
url, state = spa.create_authorization_url(disco["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
browser = requests.Session()
browser.verify = CA
browser.trust_env = False
page = browser.get(url)
assert page.status_code == 200, page.text
form = HiddenFields()
form.feed(page.text)
assert form.fields["code_challenge_method"] == "S256"
fields = dict(form.fields, username=USERNAME, password=PASSWORD, action="allow")
answer = browser.post(urllib.parse.urljoin(page.url, form.action), data=fields, allow_redirects=False)
assert answer.status_code == 303, (answer.status_code, answer.text)
location = answer.headers["Location"]
assert location.startswith(REDIRECT + "?"), location
query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
assert query["state"] == state and query["iss"] == ISSUER, query
token = spa.fetch_token(disco["token_endpoint"], authorization_response=location, code_verifier=verifier)

access = token["access_token"]
id_claims = verify(token["id_token"], jwks, "spa")
assert id_claims["nonce"] == nonce, id_claims
digest = hashlib.sha256(access.encode()).digest()
assert id_claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode(), id_claims
assert "auth_time" in id_claims
out["id_token_sub"] = id_claims["sub"]
access_claims = verify(access, jwks, KMS)
assert access_claims["sub"] == id_claims["sub"]

info = spa.get(disco["userinfo_endpoint"]).json()
assert info["sub"] == id_claims["sub"] and info["preferred_username"] == USERNAME, info
out["userinfo"] = info

# 3. refresh: rotation, then reuse of the old refresh token is refused.
old_refresh = token["refresh_token"]
new = spa.refresh_token(disco["token_endpoint"])
assert new["refresh_token"] != old_refresh
verify(new["access_token"], jwks, KMS)
reuse = requests.post(disco["token_endpoint"], verify=CA, data={
    "grant_type": "refresh_token", "client_id": "spa", "refresh_token": old_refresh})
assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant", reuse.text
family = requests.post(disco["token_endpoint"], verify=CA, data={
    "grant_type": "refresh_token", "client_id": "spa", "refresh_token": new["refresh_token"]})
assert family.status_code == 400 and family.json()["error"] == "invalid_grant", family.text
out["refresh_reuse"] = reuse.json()["error"]
print(json.dumps(out))
