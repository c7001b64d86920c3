"""A mail API stand-in for tests/spin/run.sh: records each POSTed JSON
message, with its Authorization header, as a line of the file named by the
second argument, and answers 202. Serves 127.0.0.1 only, until killed."""

import http.server
import json
import sys

PORT, OUT = int(sys.argv[1]), sys.argv[2]


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(OUT, "a", encoding="utf-8") as out:
            record = {"authorization": self.headers.get("authorization"), "body": json.loads(body)}
            out.write(json.dumps(record) + "\n")
        self.send_response(202)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", PORT), Sink).serve_forever()
