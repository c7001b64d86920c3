"""Faults under the real Spin CLI, from outside, with the Python standard
library only:

    python3 tests/spin/faults.py SPIN DATABASE_URL REDIS_URL KEY_PREFIX WORK_DIR

Serves the app with `SPIN up` on PostgreSQL and Redis, each reached through
a TCP proxy this script can cut and restore, and with a mail API stand-in
that can refuse. It checks what the local host's tests (tests/api/outages.rs,
tests/api/recovery.rs) check, where Spin's own outbound connections are the
ones that break: a store that is down gets 503 problem+json with
`Retry-After` and no internal detail, nothing is lost, and the service
recovers by itself when the store comes back; mail that cannot be delivered
stays in the outbox and is delivered on a later try. Every wait is bounded.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import http.server
import urllib.error
import urllib.parse
import urllib.request

SPIN, DATABASE_URL, REDIS_URL, PREFIX, WORK = sys.argv[1:6]
PASSWORD = "correct horse battery staple"
LEAKS = ["postgres://", "redis://", "127.0.0.1", "os error", "SELECT", "panicked", "Connection refused"]


def check(condition, message, seen=""):
    if not condition:
        print(f"FAIL: {message} {seen}")
        sys.exit(1)
    print(f"ok: {message}")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Proxy:
    """A TCP proxy to one address. `cut` drops every open connection and
    closes each new one at once, as a server that died would; `restore`
    forwards again."""

    def __init__(self, url):
        target = urllib.parse.urlsplit(url)
        default_port = {"postgres": 5432, "redis": 6379}[target.scheme]
        self.target = (target.hostname, target.port or default_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.links = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url):
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if not self.up:  # cut while connecting
                    client.close()
                    upstream.close()
                    continue
                self.links.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self.lock:
            for link in self.links:
                for end in link:
                    try:
                        end.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            self.links.clear()

    def restore(self):
        self.up = True


class MailApi(http.server.BaseHTTPRequestHandler):
    """A mail API stand-in: answers 503 while `refusing`, else records the
    message and answers 202."""

    refusing = True
    attempts = 0
    delivered = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        MailApi.attempts += 1
        if MailApi.refusing:
            self.send_response(503)
        else:
            MailApi.delivered.append({"idempotency_key": self.headers.get("idempotency-key"), "body": body})
            self.send_response(202)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def sql(statement):
    return subprocess.run(
        ["psql", "-q", "-At", DATABASE_URL, "-c", statement], check=True, capture_output=True, text=True
    ).stdout.strip()


def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


postgres = Proxy(DATABASE_URL)
redis = Proxy(REDIS_URL)
mail = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MailApi)
threading.Thread(target=mail.serve_forever, daemon=True).start()
mail_port = mail.server_address[1]
port = free_port()
BASE = f"http://127.0.0.1:{port}"
environment = dict(
    os.environ,
    SPIN_VARIABLE_DATABASE_URL=postgres.url(DATABASE_URL),
    SPIN_VARIABLE_REDIS_URL=redis.url(REDIS_URL),
    SPIN_VARIABLE_REDIS_KEY_PREFIX=PREFIX,
    SPIN_VARIABLE_JWT_KEY="faults-under-spin-faults-under-spin-key",
    SPIN_VARIABLE_MAIL_URL=f"http://127.0.0.1:{mail_port}/v1/send",
    SPIN_VARIABLE_MAIL_ALLOWED_HOST=f"http://127.0.0.1:{mail_port}",
    SPIN_VARIABLE_MAIL_API_KEY="faults-key",
)
log = open(os.path.join(WORK, "spin.log"), "w")
# Spin and what it starts are a process group of their own, ended in the
# `finally` below, also when run.sh's `timeout` stops this script.
spin = subprocess.Popen(
    [SPIN, "up", "--listen", f"127.0.0.1:{port}", "--state-dir", os.path.join(WORK, ".spin")],
    env=environment,
    stdin=subprocess.DEVNULL,
    stdout=log,
    stderr=subprocess.STDOUT,
    start_new_session=True,
)
signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (timed out?)"))


def call(method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
    except OSError:
        return None, {}, b""


def unavailable(reply, what):
    status, headers, body = reply
    check(status == 503, f"{what}: 503", f"(got {status} {body[:300]!r})")
    check(headers.get("content-type", "").startswith("application/problem+json"), f"{what}: problem+json")
    check(json.loads(body).get("code") == "service_unavailable", f"{what}: code service_unavailable")
    check((headers.get("retry-after") or "").isdigit(), f"{what}: Retry-After in seconds")
    check(not [leak for leak in LEAKS if leak in body.decode()], f"{what}: no internal detail", body)


try:
    check(
        wait_for(lambda: spin.poll() is not None or call("GET", "/health")[0] == 200, 120) and spin.poll() is None,
        "Spin serves the app through both proxies",
    )

    # Mail that the mail API refuses stays in the outbox with its error.
    email = f"faults-{int(time.time() * 1000)}@example.com"
    status, _, _ = call("POST", "/auth/register", {"email": email, "password": PASSWORD})
    check(status == 201, "registration succeeds while the mail API refuses")
    check(wait_for(lambda: MailApi.attempts >= 1, 30), "the verification mail was tried")
    kept = lambda: sql(
        f"SELECT attempts, last_error IS NOT NULL, delivered_at IS NULL FROM outbox WHERE recipient = '{email}'"
    )
    check(wait_for(lambda: kept() == "1|t|t", 10), "the refused mail is kept with its error", kept())
    # No retry before the one this test asks for below, however long the
    # outages take on a slow machine.
    sql(f"UPDATE outbox SET next_attempt_at = 4000000000 WHERE recipient = '{email}'")

    status, headers, body = call("POST", "/auth/login", {"email": email, "password": PASSWORD})
    check(status == 200, "login")
    token = json.loads(body)["access_token"]
    cookies = [c for c in headers.get_all("set-cookie") or [] if c.startswith("__Secure-refresh_token=")]
    refresh = cookies[0].split(";")[0].split("=", 1)[1]
    check(call("GET", "/questions/topics", token=token)[0] == 200, "a protected read")

    # Redis goes down: 503 wherever sessions are needed, and back by itself.
    redis.cut()
    unavailable(call("GET", "/questions/topics", token=token), "a protected read with Redis down")
    unavailable(call("POST", "/auth/login", {"email": email, "password": PASSWORD}), "login with Redis down")
    unavailable(call("POST", "/auth/refresh", {"refresh_token": refresh}), "a refresh with Redis down")
    status, headers, body = call("GET", "/health")
    check(
        status == 503 and json.loads(body) == {"status": "unavailable", "checks": {"database": "ok", "sessions": "unavailable"}},
        "/health names the session store as down",
        (status, body),
    )
    check((headers.get("retry-after") or "").isdigit(), "/health's 503 has Retry-After")
    redis.restore()
    check(
        wait_for(lambda: call("GET", "/questions/topics", token=token)[0] == 200, 10),
        "protected reads answer again once Redis is back, without a restart",
    )
    check(call("GET", "/health")[0] == 200, "/health is 200 again")
    status, _, body = call("POST", "/auth/refresh", {"refresh_token": refresh})
    check(status == 200, "the refresh token the failed refresh presented still works", (status, body[:300]))

    # PostgreSQL goes down likewise.
    postgres.cut()
    unavailable(call("GET", "/questions/topics", token=token), "a protected read with PostgreSQL down")
    unavailable(
        call("POST", "/auth/register", {"email": "2" + email, "password": PASSWORD}), "registration with PostgreSQL down"
    )
    status, _, body = call("GET", "/health")
    check(
        status == 503 and json.loads(body)["checks"] == {"database": "unavailable", "sessions": "ok"},
        "/health names the database as down",
        (status, body),
    )
    postgres.restore()
    check(
        wait_for(lambda: call("GET", "/questions/topics", token=token)[0] == 200, 10),
        "protected reads answer again once PostgreSQL is back, without a restart",
    )
    status, _, _ = call("POST", "/auth/register", {"email": "2" + email, "password": PASSWORD})
    check(status == 201, "registration works again (the refused one wrote nothing)")

    # The kept mail goes out on a later try once the mail API answers.
    MailApi.refusing = False
    sql(f"UPDATE outbox SET next_attempt_at = 0 WHERE recipient = '{email}'")
    check(call("GET", "/health")[0] == 200, "/health (which delivers due mail)")
    check(
        wait_for(lambda: any(m["body"]["to"] == email for m in MailApi.delivered), 30),
        "the kept mail is delivered when the mail API answers again",
    )
    sent = [m for m in MailApi.delivered if m["body"]["to"] == email]
    check(len(sent) == 1 and "/verify-email?token=" in sent[0]["body"]["text"], "once, with its link")
    check(
        wait_for(lambda: sql(f"SELECT attempts, delivered_at IS NOT NULL FROM outbox WHERE recipient = '{email}'") == "2|t", 10),
        "the outbox marks it delivered after its second attempt",
    )
    print("real Spin: stores that went down gave 503 and came back without a restart; refused mail was kept and delivered")
except BaseException:
    log.flush()
    print("--- Spin's output")
    print(open(os.path.join(WORK, "spin.log")).read()[-4000:])
    raise
finally:
    try:
        os.killpg(spin.pid, signal.SIGTERM)
        spin.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(spin.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
