"""Schemathesis hooks for spin-auth.

- Authentication: a fresh access token for the admin account the runner
  created, for every case (a generated logout or session revocation ends
  the token's session, as it should).
- Positive data: a JSON Schema cannot state three of the API's business
  rules, so schema-valid examples are adjusted to meet them before they are
  sent: a new password must not be a common or guessable one, a password
  change must give the right current password, a refresh token or an
  email link's token must be one the service issued, and an answer index
  must point at one of the question's choices, turning off two-factor
  sign-in must give the right password, and a second factor needs a live
  mfa_token and a code (from a new account that turns it on, its TOTP
  code computed here); the administration acts on a new account (not on
  a random id, which would only ever be a 404), and deleting one's own
  account is done by a new account with its password. Negative examples
  are left
  alone. Email links are read from the app's log (SPIN_AUTH_LOG: with no
  mail_url, the app prints the messages it keeps there).
"""

import base64
import hashlib
import hmac
import os
import secrets
import struct
import time

import requests
import schemathesis
from schemathesis.generation.modes import GenerationMode

BASE_URL = os.environ["SPIN_AUTH_URL"]
ADMIN_EMAIL = os.environ["SPIN_AUTH_ADMIN_EMAIL"]
ADMIN_PASSWORD = os.environ["SPIN_AUTH_ADMIN_PASSWORD"]


# No caching: every case logs in, because cases that log out or revoke
# sessions end the previous token's session, as they should.
@schemathesis.auth(refresh_interval=None)
class AdminToken:
    def get(self, case, context):
        response = requests.post(
            f"{BASE_URL}/auth/login",
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


def strong_password():
    return "passphrase " + secrets.token_hex(12)


def fresh_refresh_token():
    response = requests.post(
        f"{BASE_URL}/auth/login",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        timeout=30,
    )
    response.raise_for_status()
    return response.cookies.get("__Secure-refresh_token") or response.headers[
        "set-cookie"
    ].split(";")[0].split("=", 1)[1]


def newest_link(path, address):
    """The token of the newest `path` link mailed to `address`, waiting a
    little: a reset link is issued after the response."""
    for _ in range(50):
        with open(os.environ["SPIN_AUTH_LOG"], encoding="utf-8", errors="replace") as log:
            text = log.read()
        start = text.rfind(f" to {address} (kept in the outbox")
        marker = text.find(f"{path}?token=", start) if start >= 0 else -1
        if marker >= 0:
            return text[marker + len(path) + len("?token="):].split()[0]
        time.sleep(0.1)
    return None


def fresh_address():
    """A new account's address; its verification link is in the log."""
    address = f"st-{secrets.token_hex(8)}@example.com"
    requests.post(
        f"{BASE_URL}/auth/register",
        json={"email": address, "password": strong_password()},
        timeout=30,
    ).raise_for_status()
    return address


def fresh_reset_token():
    """A reset link for a new account. Each request claims to come from its
    own client (the runner is a trusted proxy), so the per-client limit on
    reset requests does not end the run."""
    address = fresh_address()
    requests.post(
        f"{BASE_URL}/auth/password/forgot",
        json={"email": address},
        headers={"x-forwarded-for": f"198.51.100.{secrets.randbelow(254) + 1}"},
        timeout=30,
    ).raise_for_status()
    return newest_link("/reset-password", address)


def mfa_case():
    """A live mfa_token and a code that completes it: a new account turns
    on two-factor sign-in (its TOTP code computed here with the standard
    library), logs in, and gives one of its recovery codes."""
    address = f"st-mfa-{secrets.token_hex(8)}@example.com"
    password = strong_password()
    requests.post(
        f"{BASE_URL}/auth/register", json={"email": address, "password": password}, timeout=30
    ).raise_for_status()
    login = requests.post(
        f"{BASE_URL}/auth/login", json={"email": address, "password": password}, timeout=30
    )
    login.raise_for_status()
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    enrolment = requests.post(f"{BASE_URL}/auth/mfa/totp", headers=bearer, timeout=30)
    enrolment.raise_for_status()
    secret = enrolment.json()["secret"]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    confirmed = requests.post(
        f"{BASE_URL}/auth/mfa/totp/confirm", json={"code": "%06d" % code}, headers=bearer, timeout=30
    )
    confirmed.raise_for_status()
    challenge = requests.post(
        f"{BASE_URL}/auth/login", json={"email": address, "password": password}, timeout=30
    )
    return challenge.json()["mfa_token"], confirmed.json()["recovery_codes"][0]


def fresh_user():
    """A new account, signed in: (id, password, access token)."""
    address = f"st-user-{secrets.token_hex(8)}@example.com"
    password = strong_password()
    registered = requests.post(
        f"{BASE_URL}/auth/register", json={"email": address, "password": password}, timeout=30
    )
    registered.raise_for_status()
    login = requests.post(
        f"{BASE_URL}/auth/login", json={"email": address, "password": password}, timeout=30
    )
    login.raise_for_status()
    return registered.json()["id"], password, login.json()["access_token"]


def is_integral(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()


@schemathesis.hook
def map_case(context, case):
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return case
    label = case.operation.label
    if label in ("GET /admin/users/{id}", "PATCH /admin/users/{id}", "DELETE /admin/users/{id}"):
        case.path_parameters = {**(case.path_parameters or {}), "id": fresh_user()[0]}
    body = case.body
    if not isinstance(body, dict):
        return case
    if label == "DELETE /auth/me" and isinstance(body.get("current_password"), str):
        # A new account deletes itself (the admin is the last admin, and
        # deleting it would end the run).
        _, password, token = fresh_user()
        body["current_password"] = password
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    elif label == "POST /auth/register" and isinstance(body.get("password"), str):
        body["password"] = strong_password()
    elif label == "POST /auth/password" and isinstance(body.get("new_password"), str):
        # The admin's own password, kept, so the run can log in again.
        body["current_password"] = ADMIN_PASSWORD
        body["new_password"] = ADMIN_PASSWORD
    elif label == "DELETE /auth/mfa/totp" and isinstance(body.get("current_password"), str):
        # The right password: turning off a second factor the admin never
        # turned on is a 204, and wrong guesses would throttle the
        # admin's password changes too.
        body["current_password"] = ADMIN_PASSWORD
    elif label == "POST /auth/mfa/verify" and isinstance(body.get("mfa_token"), str):
        body["mfa_token"], code = mfa_case()
        if isinstance(body.get("code"), str):
            body["code"] = code
    elif label == "POST /auth/refresh" and isinstance(body.get("refresh_token"), str):
        body["refresh_token"] = fresh_refresh_token()
    elif label == "POST /auth/verify-email" and isinstance(body.get("token"), str):
        body["token"] = newest_link("/verify-email", fresh_address())
    elif label == "POST /auth/password/reset" and isinstance(body.get("token"), str):
        body["token"] = fresh_reset_token()
        if isinstance(body.get("new_password"), str):
            body["new_password"] = strong_password()
    elif label == "POST /questions/topics/{slug}/questions":
        choices = body.get("choices")
        if isinstance(choices, list) and choices and is_integral(body.get("answer_index")):
            body["answer_index"] = int(body["answer_index"]) % len(choices)
    elif label == "POST /questions/{id}/answer" and is_integral(body.get("answer_index")):
        body["answer_index"] = 0
    return case

