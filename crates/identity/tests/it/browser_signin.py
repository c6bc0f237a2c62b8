"""A person signs in through Identity's sign-in and consent page in a real browser.

Debian's Chromium, driven by Playwright (never a browser of Playwright's own), with JavaScript
turned off: the page must work as plain HTML. Chromium trusts our TLS certificate only by the
SPKI hash of the Identity leaf, and resolves identity.demo.local to 127.0.0.1 and every other
name to nothing, so no request leaves this machine. The redirect to the client
(https://app.demo.local/callback, which does not exist) is intercepted, not loaded.

Usage: browser_signin.py AUTHORIZE_URL LEAF_PEM USERNAME PASSWORD REDIRECT_URI SCREENSHOT_DIR

Prints one JSON document with what it observed; exits non-zero on any failure.
"""

import base64
import hashlib
import json
import os
import sys
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import expect, sync_playwright

AUTHORIZE_URL, LEAF, USERNAME, PASSWORD, REDIRECT_URI, SHOTS = sys.argv[1:7]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HOST = urllib.parse.urlsplit(AUTHORIZE_URL).hostname


def spki_hash(pem_path):
    """base64(SHA-256(SubjectPublicKeyInfo)) of the (first) certificate in the file."""
    with open(pem_path, "rb") as f:
        leaf = x509.load_pem_x509_certificates(f.read())[0]
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def focused(page):
    """The focused element: its id or, for buttons, its value; and whether its outline shows."""
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {
                name: el.id || el.value || el.tagName,
                outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
            };
        }"""
    )


seen = {"spki": spki_hash(LEAF)}
callbacks = []

with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            f"--host-resolver-rules=MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND",
            f"--ignore-certificate-errors-spki-list={seen['spki']}",
        ],
        timeout=60_000,
    )
    context = browser.new_context(java_script_enabled=False, locale="en-GB", viewport={"width": 800, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)

    def on_callback(route):
        callbacks.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="the client's callback (intercepted)")

    page.route(REDIRECT_URI + "*", on_callback)
    # The request events see the redirect target too, whatever the route does with redirects.
    page.on("request", lambda r: r.url.startswith(REDIRECT_URI) and callbacks.append(r.url))

    response = page.goto(AUTHORIZE_URL)
    assert response is not None and response.status == 200, response and response.status
    seen["csp"] = response.headers.get("content-security-policy")
    seen["title"] = page.title()
    seen["lang"] = page.locator("html").get_attribute("lang")
    seen["h1"] = page.get_by_role("heading", level=1).inner_text()
    seen["main"] = page.get_by_role("main").count()
    seen["scopes"] = page.get_by_role("list", name=page.get_by_role("heading", level=2).nth(1).inner_text()).get_by_role("listitem").all_inner_texts()
    seen["context"] = page.locator("dl.context").inner_text()
    page.screenshot(path=os.path.join(SHOTS, "signin.png"), full_page=True)

    # Keyboard: the focus order is the reading order, and the focus is visible.
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(focused(page))
        if order[-1]["name"] == "allow":
            page.screenshot(path=os.path.join(SHOTS, "signin-focus.png"), full_page=True)
    seen["focus_order"] = [f["name"] for f in order]
    seen["focus_visible"] = all(f["outline"] for f in order)

    # A wrong password: announced, and tied to the fields.
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Allow").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Invalid username or password.")
    expect(page.get_by_label("Username")).to_have_accessible_description("Invalid username or password.")
    expect(page.get_by_label("Password")).to_have_accessible_description("Invalid username or password.")
    seen["username_invalid"] = page.get_by_label("Username").get_attribute("aria-invalid")
    seen["alert"] = alert.inner_text()
    page.screenshot(path=os.path.join(SHOTS, "signin-error.png"), full_page=True)

    # The right password, and consent; the username is still there.
    expect(page.get_by_label("Username")).to_have_value(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(REDIRECT_URI + "*")
    seen["callback"] = callbacks[0] if callbacks else None
    seen["final_url"] = page.url
    context.close()
    browser.close()

print(json.dumps(seen))
