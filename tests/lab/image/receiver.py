"""A tiny webhook for the validation script's tests: hands out a token, answers reports with planned status codes.

    python receiver.py HOST PORT OUTDIR [STATUS ...] [token=STATUS ...]

A POST to a path ending in /token is a token request: saved as OUTDIR/token-N.json, answered with the Nth token=STATUS
(the last one repeats; default 200), a 2xx carrying {"token": TOKEN}. Any other POST is a report: saved as
OUTDIR/request-N.json ({"path", "headers", "body"}), answered with the Nth STATUS (the last one repeats; default 200).
Writes OUTDIR/ready once listening. Standard library only, so it also runs inside a network namespace without the
project venv.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "tok-3f9a1c77e2-0123456789abcdef"


def main(argv: list[str]) -> None:
    host, port, outdir = argv[0], int(argv[1]), Path(argv[2])
    plan = [int(s) for s in argv[3:] if not s.startswith("token=")] or [200]
    token_plan = [int(s.split("=", 1)[1]) for s in argv[3:] if s.startswith("token=")] or [200]
    seen: list[int] = []
    tokens_seen: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8", "replace")
            record = {"path": self.path, "headers": dict(self.headers.items()), "body": body}
            asked = self.path.endswith("/token")
            done, planned, name = (tokens_seen, token_plan, "token") if asked else (seen, plan, "request")
            n = len(done)
            done.append(n)
            (outdir / f"{name}-{n}.json").write_text(json.dumps(record))
            status = planned[min(n, len(planned) - 1)]
            reply: dict[str, object] = {"status": "accepted" if status < 300 else "error", "n": n}
            if asked and status < 300:
                reply["token"] = TOKEN
            answer = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer((host, port), Handler)
    (outdir / "ready").write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
