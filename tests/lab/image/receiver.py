"""A tiny report receiver for the validation script's tests: answers POSTs with a planned list of status codes.

    python receiver.py HOST PORT OUTDIR [STATUS ...]

Each request is saved as OUTDIR/request-N.json ({"path", "headers", "body"}); the Nth request is answered with the
Nth STATUS (the last one repeats; default 200). Writes OUTDIR/ready once listening. Standard library only, so it also
runs inside a network namespace without the project venv.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main(argv: list[str]) -> None:
    host, port, outdir = argv[0], int(argv[1]), Path(argv[2])
    plan = [int(s) for s in argv[3:]] or [200]
    seen: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8", "replace")
            n = len(seen)
            seen.append(n)
            record = {"path": self.path, "headers": dict(self.headers.items()), "body": body}
            (outdir / f"request-{n}.json").write_text(json.dumps(record))
            status = plan[min(n, len(plan) - 1)]
            answer = json.dumps({"status": "accepted" if status < 300 else "error", "n": n}).encode()
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
