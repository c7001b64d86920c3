"""The service's EdDSA tokens, checked by PyJWT (an implementation that
shares no code with the service). Called by run.sh in three steps:

- keys: writes two Ed25519 keys (PKCS#8 PEM) and an HMAC secret to STATE;
- before-rotation: discovery, JWKS, a token verified by PyJWKClient; the
  token is kept in STATE;
- after-rotation (new key, old key as the previous one): the old token is
  still valid, new tokens carry the new kid, and the service refuses an
  HS256 token and a token from an unknown key.
"""

import base64
import hashlib
import json
import os
import pathlib
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

BASE = os.environ["SPIN_AUTH_URL"]
PASSWORD = "correct horse battery staple"


def call(method, path, body=None, token=None, form=None):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if form is not None:
        data = form.encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        path if path.startswith("http") else BASE + path,
        data=data,
        headers=headers,
        method=method,
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(pem_path):
    """RFC 7638 thumbprint of the key's public JWK."""
    key = serialization.load_pem_private_key(pem_path.read_bytes(), None)
    x = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(x)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


def sign_in():
    email = f"pyjwt-{uuid.uuid4().hex}@example.com"
    status, _, text = call("POST", "/auth/register", {"email": email, "password": PASSWORD})
    assert status == 201, (status, text)
    return email


def discover():
    status, headers, text = call("GET", "/.well-known/openid-configuration")
    assert status == 200, (status, text)
    assert headers["Cache-Control"].startswith("public, max-age="), headers
    document = json.loads(text)
    for field in (
        "issuer",
        "jwks_uri",
        "token_endpoint",
        "grant_types_supported",
        "id_token_signing_alg_values_supported",
        "token_endpoint_auth_methods_supported",
    ):
        assert field in document, (field, document)
    assert document["jwks_uri"] == BASE + "/.well-known/jwks.json", document
    assert document["token_endpoint"] == BASE + "/auth/login", document
    assert document["id_token_signing_alg_values_supported"] == ["EdDSA"], document
    assert "password" in document["grant_types_supported"], document
    return document


def login(document, email):
    """The password grant at the discovered token endpoint (form body)."""
    form = f"username={urllib.parse.quote(email)}&password={urllib.parse.quote(PASSWORD)}"
    status, _, text = call("POST", document["token_endpoint"], form=form)
    assert status == 200, (status, text)
    return json.loads(text)["access_token"]


def verify(document, token):
    client = jwt.PyJWKClient(document["jwks_uri"], cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience="spin-auth",
        issuer=document["issuer"],
        options={"require": ["exp", "iat", "nbf", "sub", "jti"]},
    )


def main(step, state):
    state = pathlib.Path(state)
    if step == "keys":
        for name in ("old", "new", "stranger"):
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            (state / f"{name}.pem").write_bytes(pem)
        (state / "hmac").write_text(uuid.uuid4().hex + uuid.uuid4().hex)
        return

    document = discover()
    if step == "before-rotation":
        email = sign_in()
        token = login(document, email)
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "EdDSA" and header["typ"] == "at+jwt", header
        assert header["kid"] == thumbprint(state / "old.pem"), header
        claims = verify(document, token)
        assert claims["roles"] == ["user"], claims
        (state / "token").write_text(token)
        (state / "email").write_text(email)
        print("before rotation: PyJWT verified a token signed by", header["kid"])
        return

    assert step == "after-rotation", step
    old_token = (state / "token").read_text()
    status, _, text = call("GET", "/.well-known/jwks.json")
    kids = [jwk["kid"] for jwk in json.loads(text)["keys"]]
    assert kids == [thumbprint(state / "new.pem"), thumbprint(state / "old.pem")], kids
    verify(document, old_token)
    status, _, text = call("GET", "/questions/topics", token=old_token)
    assert status == 200, ("the old token still opens the service", status, text)

    new_token = login(document, (state / "email").read_text())
    assert jwt.get_unverified_header(new_token)["kid"] == thumbprint(state / "new.pem")
    verify(document, new_token)

    claims = jwt.decode(new_token, options={"verify_signature": False})
    hs256 = jwt.encode(
        claims, (state / "hmac").read_text(), algorithm="HS256", headers={"typ": "at+jwt"}
    )
    stranger = serialization.load_pem_private_key((state / "stranger.pem").read_bytes(), None)
    unknown = jwt.encode(
        claims,
        stranger,
        algorithm="EdDSA",
        headers={"typ": "at+jwt", "kid": thumbprint(state / "stranger.pem")},
    )
    for what, forged in (("HS256 under EdDSA", hs256), ("an unknown kid", unknown)):
        status, headers, text = call("GET", "/questions/topics", token=forged)
        assert status == 401, (what, status, text)
        assert json.loads(text)["code"] == "invalid_token", (what, text)
        try:
            verify(document, forged)
        except jwt.exceptions.PyJWTError:
            pass
        else:
            raise AssertionError(f"PyJWT accepted {what}")
    print("after rotation: old and new tokens verify; HS256 and unknown keys are refused")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
