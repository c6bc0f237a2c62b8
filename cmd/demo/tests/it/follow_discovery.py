"""A stranger's relying party against a running demo stack: follows what discovery advertises.

Usage: follow_discovery.py ISSUER CA_BUNDLE CLIENT_ID CLIENT_SECRET_FILE
Prints one JSON document with what it observed; exits non-zero on any failure.

The only help it gets is what a hosts-file line gives a browser: `*.demo.local` resolves to
127.0.0.1. Ports are never remapped, so every advertised URL must answer on the port it names.
TLS trusts only the CA bundle given.
"""
import json
import socket
import sys
import urllib.parse

import requests
from authlib.integrations.requests_client import OAuth2Session

ISSUER, CA, CLIENT_ID, SECRET_FILE = sys.argv[1:5]

_getaddrinfo = socket.getaddrinfo


def _hosts_file(host, port, *args, **kwargs):
    # 127.0.0.1 identity.demo.local kms.demo.local: a name mapping, the port untouched.
    if isinstance(host, str) and host.endswith(".demo.local"):
        host = "127.0.0.1"
    return _getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _hosts_file

session = requests.Session()
# Only our CA: no REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE (or proxy) from the environment.
session.trust_env = False
session.verify = CA
observed = {"followed": {}}

metadata_url = ISSUER + "/.well-known/openid-configuration"
meta = session.get(metadata_url, timeout=10)
meta.raise_for_status()
meta = meta.json()
observed["issuer"] = meta["issuer"]
if meta["issuer"] != ISSUER:
    sys.exit(f"discovery names the issuer {meta['issuer']}, fetched from {ISSUER}")

# Every URL the metadata advertises answers where it says (a GET of a POST-only endpoint
# answers 405: it is there). Connection refused, 404 or a 5xx is a failure.
for key, value in sorted(meta.items()):
    if not (key.endswith("_endpoint") or key.endswith("_uri")) or not isinstance(value, str):
        continue
    if urllib.parse.urlsplit(value).netloc != urllib.parse.urlsplit(ISSUER).netloc:
        sys.exit(f"{key} ({value}) is not on the issuer's host and port")
    try:
        status = session.get(value, timeout=10, allow_redirects=False).status_code
    except requests.RequestException as e:
        sys.exit(f"{key} ({value}) does not answer: {e}")
    if status == 404 or status >= 500:
        sys.exit(f"{key} ({value}) answered {status}")
    observed["followed"][key] = status

# A confidential client uses the endpoints exactly as advertised.
with open(SECRET_FILE) as f:
    secret = f.readline().strip()
client = OAuth2Session(CLIENT_ID, secret, token_endpoint_auth_method="client_secret_basic")
client.trust_env = False
client.verify = CA
token = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
observed["token_type"] = token.get("token_type")
answer = client.introspect_token(meta["introspection_endpoint"], token=token["access_token"])
answer.raise_for_status()
observed["active"] = answer.json().get("active")
if observed["active"] is not True:
    sys.exit(f"introspection of a fresh token said {answer.json()}")
jwks = session.get(meta["jwks_uri"], timeout=10).json()
observed["jwks_keys"] = len(jwks.get("keys", []))
print(json.dumps(observed))
