"""End-to-end smoke test of a running spin-auth, from outside, with the
Python standard library only: `python3 tests/smoke/smoke.py <base-url>`.

Register, log in, read a protected route, rotate the refresh token, log out,
and check that the old tokens stop working. It runs against the local host
in CI and against real `spin up` in .github/workflows/spin.yml.
"""

import json
import sys
import time
import urllib.error
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


status, _, body = call("GET", "/health")
check(status == 200 and json.loads(body)["status"] == "ok", "GET /health is 200 ok")

email = f"smoke-{int(time.time() * 1000)}@example.com"
status, headers, body = call("POST", "/auth/register", {"email": email, "password": PASSWORD})
check(status == 201 and headers.get("location") == "/auth/me", "register gives 201 with Location")

status, headers, body = call("POST", "/auth/login", {"email": email, "password": PASSWORD})
check(status == 200, "login gives 200")
access = json.loads(body)["access_token"]
refresh = cookie(headers)
check(refresh is not None, "login sets the refresh cookie")

bearer = {"authorization": f"Bearer {access}"}
status, _, _ = call("GET", "/questions/topics", headers=bearer)
check(status == 200, "the access token opens GET /questions/topics")

status, headers, body = call("POST", "/auth/refresh", headers={"cookie": f"__Secure-refresh_token={refresh}"})
rotated = cookie(headers)
check(status == 200 and rotated and rotated != refresh, "refresh rotates the token")

status, _, _ = call("POST", "/auth/logout", headers={"cookie": f"__Secure-refresh_token={rotated}"})
check(status == 204, "logout gives 204")

status, _, body = call("POST", "/auth/refresh", headers={"cookie": f"__Secure-refresh_token={rotated}"})
check(status == 401 and json.loads(body)["code"] == "invalid_refresh_token", "the logged-out refresh token is refused")

status, headers, body = call("GET", "/questions/topics", headers=bearer)
check(status == 401 and headers.get("www-authenticate", "").startswith("Bearer"), "the access token stops working at once")

status, headers, _ = call("GET", "/no/such/route")
check(status == 404 and headers.get("content-type") == "application/problem+json", "an unknown route is a problem+json 404")
print("smoke test passed")
