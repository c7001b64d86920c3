"""End-to-end smoke test of a running spin-auth, from outside, with the
Python standard library only: `python3 tests/smoke/smoke.py <base-url>`.

Register, log in, read a protected route, rotate the refresh token, log out,
and check that the old tokens stop working; then every other route of the
contract once (the question routes when SMOKE_ADMIN_EMAIL names an address
in the app's `admin_emails`, and SMOKE_LOG the file where the app prints
the links of the mail it keeps). It runs against the local host and against
real `spin up` (tests/spin/run.sh) in CI.
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BASE = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:3000"
PASSWORD = "correct horse battery staple"


def call(method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}")
        sys.exit(1)
    print(f"ok: {message}")


def cookie(headers):
    for value in headers.get_all("set-cookie") or []:
        if value.startswith("__Secure-refresh_token="):
            return value.split(";")[0].split("=", 1)[1]
    return None


status, headers, body = call("GET", "/health")
check(status == 200 and json.loads(body)["status"] == "ok", "GET /health is 200 ok")
length = headers.get("content-length")
status, headers, body = call("HEAD", "/health")
check(status == 200 and headers.get("content-length") == length, "HEAD /health is GET's status and headers")
# A client stops reading at a HEAD response's headers; on the wire, nothing follows them.
base = urllib.parse.urlsplit(BASE)
with socket.create_connection((base.hostname, base.port), timeout=30) as raw:
    raw.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    wire = b""
    while chunk := raw.recv(65536):
        wire += chunk
head, _, rest = wire.partition(b"\r\n\r\n")
check(head.startswith(b"HTTP/1.1 200") and rest == b"", "HEAD /health sends no body")

email = f"smoke-{int(time.time() * 1000)}@example.com"
status, headers, body = call("POST", "/auth/register", {"email": email, "password": PASSWORD})
check(status == 201 and headers.get("location") == "/auth/me", "register gives 201 with Location")

status, headers, body = call("POST", "/auth/login", {"email": email, "password": PASSWORD})
check(status == 200, "login gives 200")
access = json.loads(body)["access_token"]
refresh = cookie(headers)
check(refresh is not None, "login sets the refresh cookie")

bearer = {"authorization": f"Bearer {access}"}
status, _, body = call("DELETE", "/auth/me", headers=bearer)
check(
    status == 422 and [e["field"] for e in json.loads(body)["errors"]] == ["current_password"],
    "a request with no body hears which fields are required (422)",
)
status, headers, _ = call("GET", "/questions/topics", headers=bearer)
check(status == 200, "the access token opens GET /questions/topics")
check(headers.get("cache-control") == "no-store", "an answer with personal data is no-store")
status, headers, _ = call(
    "POST",
    "/auth/login",
    {"email": email, "password": PASSWORD},
    headers={"content-encoding": "gzip"},
)
check(
    status == 415 and headers.get("accept-encoding") == "identity",
    "a body in a content coding is refused with 415 and Accept-Encoding",
)


def exchange(request):
    """Sends `request` as it is on a new connection; the whole answer."""
    port = base.port or (443 if base.scheme == "https" else 80)
    with socket.create_connection((base.hostname, port), timeout=30) as raw:
        raw.sendall(request.encode())
        wire = b""
        while chunk := raw.recv(65536):
            wire += chunk
    return wire


wire = exchange(
    f"GET /auth/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {access}\r\n"
    f"Authorization: Bearer {access}x\r\nConnection: close\r\n\r\n"
)
check(
    wire.startswith(b"HTTP/1.1 401") and b"more than one Authorization header" in wire,
    "two Authorization headers are refused",
)
wire = exchange("GET /.well-known/openid-configuration HTTP/1.1\r\nHost: x@y\r\nConnection: close\r\n\r\n")
check(
    wire.startswith(b"HTTP/1.1 400") and b'"code":"bad_request"' in wire,
    "discovery with a Host that is no host name is a 400, not a 500",
)

status, headers, body = call("POST", "/auth/refresh", headers={"cookie": f"__Secure-refresh_token={refresh}"})
rotated = cookie(headers)
check(status == 200 and rotated and rotated != refresh, "refresh rotates the token")

status, headers, _ = call("POST", "/auth/logout", headers={"cookie": f"__Secure-refresh_token={rotated}"})
check(status == 204 and "content-length" not in headers, "logout gives 204, without Content-Length (RFC 9110 section 8.6)")

status, _, body = call("POST", "/auth/refresh", headers={"cookie": f"__Secure-refresh_token={rotated}"})
check(status == 401 and json.loads(body)["code"] == "invalid_refresh_token", "the logged-out refresh token is refused")

status, headers, body = call("GET", "/questions/topics", headers=bearer)
check(status == 401 and headers.get("www-authenticate", "").startswith("Bearer"), "the access token stops working at once")

status, headers, _ = call("GET", "/no/such/route")
check(status == 404 and headers.get("content-type") == "application/problem+json", "an unknown route is a problem+json 404")

status, headers, _ = call("DELETE", "/auth/login")
check(status == 405 and "POST" in (headers.get("allow") or ""), "a wrong method is a 405 with Allow")

# Every other route of the contract, once each.
status, _, body = call("POST", "/auth/login", {"email": "nobody-" + email, "password": PASSWORD})
check(status == 401 and json.loads(body)["code"] == "invalid_credentials", "an unknown email gets 401 invalid_credentials")

status, _, body = call("POST", "/auth/register", {"email": email.upper(), "password": PASSWORD})
check(status == 409 and json.loads(body)["code"] == "email_taken", "a taken email gets 409 email_taken")

form = urllib.parse.urlencode({"username": email, "password": PASSWORD}).encode()
request = urllib.request.Request(BASE + "/auth/login", data=form, method="POST")
request.add_header("content-type", "application/x-www-form-urlencoded")
with urllib.request.urlopen(request, timeout=30) as response:
    first = json.loads(response.read())
check(first["token_type"] == "bearer", "login accepts the OAuth2 password form")

status, headers, body = call("POST", "/auth/login", {"email": email, "password": PASSWORD})
second = json.loads(body)
second_refresh = cookie(headers)
bearer = {"authorization": f"Bearer {second['access_token']}"}

status, _, body = call("GET", "/auth/me", headers=bearer)
check(status == 200 and json.loads(body)["email"] == email, "GET /auth/me is the user")

status, _, body = call("GET", "/auth/sessions", headers=bearer)
sessions = json.loads(body)
check(status == 200 and len(sessions) == 2 and sum(s["current"] for s in sessions) == 1, "GET /auth/sessions lists both sessions, one current")
other = next(s["id"] for s in sessions if not s["current"])

status, _, _ = call("DELETE", f"/auth/sessions/{other}", headers=bearer)
check(status == 204, "DELETE /auth/sessions/{id} ends the other session")
status, _, body = call("DELETE", f"/auth/sessions/{other}", headers=bearer)
check(status == 404 and json.loads(body)["code"] == "session_not_found", "a session already ended is 404 session_not_found")
status, _, _ = call("GET", "/auth/me", headers={"authorization": f"Bearer {first['access_token']}"})
check(status == 401, "the ended session's access token is refused")

new_password = PASSWORD + " again"
status, _, body = call("POST", "/auth/password", {"current_password": "wrong password!", "new_password": new_password}, headers=bearer)
check(status == 401 and json.loads(body)["code"] == "invalid_credentials", "a wrong current password is refused")
status, _, _ = call("POST", "/auth/password", {"current_password": PASSWORD, "new_password": new_password}, headers=bearer)
check(status == 204, "POST /auth/password changes the password")
status, _, _ = call("POST", "/auth/login", {"email": email, "password": new_password})
check(status == 200, "the new password logs in")

status, _, _ = call("POST", "/auth/logout?scope=global", headers={"cookie": f"__Secure-refresh_token={second_refresh}"})
check(status == 204, "logout with scope=global gives 204")
status, _, _ = call("GET", "/auth/me", headers=bearer)
check(status == 401, "a global logout ends the session at once")

def totp(secret, step):
    """RFC 6238 (HMAC-SHA-1, 6 digits) from the standard library: this
    test's authenticator app."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return "%06d" % (value % 1_000_000)


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# Two-factor sign-in: enrol, confirm, log in with a code, turn it off.
mfa_email = "mfa-" + email
call("POST", "/auth/register", {"email": mfa_email, "password": PASSWORD})
status, _, body = call("POST", "/auth/login", {"email": mfa_email, "password": PASSWORD})
mfa_bearer = {"authorization": f"Bearer {json.loads(body)['access_token']}"}
status, _, body = call("POST", "/auth/mfa/totp", headers=mfa_bearer)
check(status == 200 and json.loads(body)["otpauth_uri"].startswith("otpauth://totp/"), "POST /auth/mfa/totp starts an enrolment")
secret = json.loads(body)["secret"]
step = int(time.time()) // 30
status, _, body = call("POST", "/auth/mfa/totp/confirm", {"code": totp(secret, step)}, headers=mfa_bearer)
check(status == 200 and len(json.loads(body)["recovery_codes"]) == 10, "POST /auth/mfa/totp/confirm turns it on with 10 recovery codes")
status, headers, body = call("POST", "/auth/login", {"email": mfa_email, "password": PASSWORD})
check(status == 403 and json.loads(body)["code"] == "mfa_required" and cookie(headers) is None, "with TOTP on, login asks for a code and gives no tokens")
mfa_token = json.loads(body)["mfa_token"]
status, headers, body = call("POST", "/auth/mfa/verify", {"mfa_token": mfa_token, "code": totp(secret, step + 1)})
check(status == 200 and cookie(headers) and claims(json.loads(body)["access_token"])["amr"] == ["pwd", "otp"], "POST /auth/mfa/verify completes the login, amr pwd+otp")
status, _, body = call("POST", "/auth/mfa/verify", {"mfa_token": mfa_token, "code": totp(secret, step + 1)})
check(status == 401 and json.loads(body)["code"] == "invalid_mfa_token", "an mfa_token is single use")
status, _, _ = call("DELETE", "/auth/mfa/totp", {"current_password": PASSWORD}, headers=mfa_bearer)
check(status == 204, "DELETE /auth/mfa/totp turns it off")

status, _, body = call("GET", "/openapi.json")
check(status == 200 and json.loads(body)["openapi"].startswith("3.1"), "GET /openapi.json is an OpenAPI 3.1 document")
status, _, body = call("GET", "/docs")
check(status == 200 and b"swagger" in body.lower(), "GET /docs serves Swagger UI")

def verification_token(log_path, address):
    """The newest verification link for `address` in the app's log (with no
    mail_url, messages are printed there)."""
    for _ in range(50):
        with open(log_path, encoding="utf-8", errors="replace") as log:
            text = log.read()
        start = text.rfind(f" to {address} (kept in the outbox")
        if start >= 0:
            marker = text.find("/verify-email?token=", start)
            if marker >= 0:
                token = text[marker + len("/verify-email?token="):].split()[0]
                return token
        time.sleep(0.1)
    return None


admin = os.environ.get("SMOKE_ADMIN_EMAIL")
if admin:
    call("POST", "/auth/register", {"email": admin, "password": PASSWORD})
    # admin_emails grants admin to a verified address only.
    token = verification_token(os.environ["SMOKE_LOG"], admin)
    check(token is not None, "registration printed a verification link to the log")
    status, _, body = call("POST", "/auth/verify-email", {"token": token})
    check(status == 200 and json.loads(body)["email_verified"], "the link verifies the admin's address")
    status, _, body = call("POST", "/auth/login", {"email": admin, "password": PASSWORD})
    check(status == 200, "the admin logs in")
    admin_bearer = {"authorization": f"Bearer {json.loads(body)['access_token']}"}
    status, _, body = call("POST", "/auth/login", {"email": email, "password": new_password})
    user_bearer = {"authorization": f"Bearer {json.loads(body)['access_token']}"}

    slug = f"smoke-{int(time.time() * 1000)}"
    status, _, body = call("POST", "/questions/topics", {"slug": slug, "name": "Smoke"}, headers=user_bearer)
    check(status == 403 and json.loads(body)["code"] == "forbidden", "a user cannot create a topic")
    status, _, _ = call("POST", "/questions/topics", {"slug": slug, "name": "Smoke"}, headers=admin_bearer)
    check(status == 201, "an admin creates a topic")
    status, _, body = call("POST", "/questions/topics", {"slug": slug, "name": "Smoke"}, headers=admin_bearer)
    check(status == 409 and json.loads(body)["code"] == "slug_taken", "a taken slug gets 409")
    status, _, body = call("GET", f"/questions/topics/{slug}/questions", headers=user_bearer)
    check(status == 200 and json.loads(body)["items"] == [], "a new topic has no questions")
    question = {"prompt": "2 + 2?", "choices": ["3", "4"], "answer_index": 1}
    status, _, body = call("POST", f"/questions/topics/{slug}/questions", question, headers=admin_bearer)
    check(status == 201, "an admin adds a question")
    question_id = json.loads(body)["id"]
    status, _, body = call("GET", f"/questions/topics/{slug}/questions", headers=user_bearer)
    items = json.loads(body)["items"]
    check(status == 200 and len(items) == 1 and "answer_index" not in items[0], "questions are listed without their answers")
    status, _, body = call("POST", f"/questions/{question_id}/answer", {"answer_index": 1}, headers=user_bearer)
    check(status == 200 and json.loads(body)["correct"] is True, "a right answer is recorded as correct")
    status, _, body = call("GET", "/questions/topics", headers=user_bearer)
    topic = next(t for t in json.loads(body) if t["slug"] == slug)
    check(topic["answered"] == 1 and topic["correct"] == 1, "the topic counts the caller's answer")
    status, _, body = call("GET", "/questions/topics/no-such-topic/questions", headers=user_bearer)
    check(status == 404 and json.loads(body)["code"] == "not_found", "an unknown topic is 404 not_found")

    # The administration.
    status, _, body = call("GET", "/admin/users", headers=user_bearer)
    check(status == 403 and json.loads(body)["code"] == "forbidden", "a user cannot list users")
    status, _, body = call("GET", "/admin/users?query=" + urllib.parse.quote(email) + "&limit=5", headers=admin_bearer)
    page = json.loads(body)
    check(status == 200 and [u["email"] for u in page["items"]] == [email], "an admin finds the user by email prefix")
    user_id = page["items"][0]["id"]
    check(page["items"][0]["disabled"] is False and page["items"][0]["last_login_at"], "the listing shows disabled and the last login")
    status, _, body = call("PATCH", f"/admin/users/{user_id}", {"disabled": True}, headers=admin_bearer)
    check(status == 200 and json.loads(body)["disabled"] is True, "an admin disables the account")
    status, _, body = call("GET", "/auth/me", headers=user_bearer)
    check(status == 401 and json.loads(body)["code"] == "invalid_token", "a disabled user's access token stops at once")
    status, _, body = call("POST", "/auth/login", {"email": email, "password": new_password})
    check(status == 403 and json.loads(body)["code"] == "account_disabled", "a disabled account cannot log in")
    status, _, body = call("PATCH", f"/admin/users/{user_id}", {"disabled": False}, headers=admin_bearer)
    check(status == 200 and json.loads(body)["disabled"] is False, "an admin enables it again")
    admin_id = claims(admin_bearer["authorization"].split()[1])["sub"]
    status, _, body = call("PATCH", f"/admin/users/{admin_id}", {"roles": ["user"]}, headers=admin_bearer)
    check(status == 409 and json.loads(body)["code"] == "last_admin", "the last admin keeps the role")
    status, _, body = call("GET", f"/admin/audit?user_id={user_id}&event=admin_user_updated", headers=admin_bearer)
    events = json.loads(body)["items"]
    check(status == 200 and len(events) == 2 and admin_id in events[0]["detail"], "the audit trail names the admin")
    status, _, body = call("POST", "/auth/login", {"email": email, "password": new_password})
    user_bearer = {"authorization": f"Bearer {json.loads(body)['access_token']}"}
    status, _, body = call("DELETE", "/auth/me", {"current_password": "not the password"}, headers=user_bearer)
    check(status == 401 and json.loads(body)["code"] == "invalid_credentials", "deleting oneself needs the password")
    status, headers, _ = call("DELETE", "/auth/me", {"current_password": new_password}, headers=user_bearer)
    check(status == 204 and "Max-Age=0" in (headers.get("set-cookie") or ""), "a user deletes their account")
    status, _, body = call("GET", f"/admin/users/{user_id}", headers=admin_bearer)
    check(status == 404 and json.loads(body)["code"] == "not_found", "the deleted account is gone")
    status, _, _ = call("POST", "/auth/login", {"email": email, "password": new_password})
    check(status == 401, "the deleted account cannot log in")
print("smoke test passed")
