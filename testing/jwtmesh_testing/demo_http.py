"""The demo apps' one program (`demo-http`, in the local demo-app image of `make images`).

    demo-http serve --port 8080 --text census    answers every request 200 with the text and
                                                 the caller jwtmesh verified (x-jwtmesh-*)
    demo-http idle                               waits for SIGTERM (a client-only app)
    demo-http get URL [-H 'name: value'] [-X DELETE]
                                                 prints the status code, as `curl -w
                                                 '%{http_code}'` would (000 if no answer),
                                                 then the reason code of a jwtmesh refusal
                                                 (its JSON body's "error"), if any

Standard library only: the image carries Debian's python3 and nothing else. As a container's
PID 1 it must handle SIGTERM itself (the kernel ignores signals PID 1 has no handler for), or
every Pod deletion waits out its grace period.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port: int, text: str, host: str = "127.0.0.1") -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: Envoy reuses its connections to the app

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return  # one line per request is all the container log would hold under load

        def _answer(self) -> None:
            caller = {k: v for k, v in self.headers.items() if k.lower().startswith("x-jwtmesh")}
            body = f"{text}\n{caller}\n".encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = do_PUT = _answer

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        # The standard library's backlog of 5 dropped connections from Envoy under load:
        # 503 "upstream connect error ... connection timeout" that were no jwtmesh refusal.
        request_queue_size = 128

    server = Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    idle()
    server.shutdown()


def idle() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def get(url: str, headers: list[str], method: str) -> str:
    request = urllib.request.Request(url, method=method)  # noqa: S310
    for header in headers:
        name, _, value = header.partition(":")
        request.add_header(name.strip(), value.strip())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {refusal_reason(exc.read())}".strip()
    except OSError:
        return "000"


def refusal_reason(body: bytes) -> str:
    """The reason code of a jwtmesh refusal body (`{"error": "missing_token", ...}`), or ""."""
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, str) else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo-http")
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve")
    serving.add_argument("--port", type=int, default=8080)
    # Loopback by default, like the example's apps: only Envoy (same Pod) reaches the app.
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--text", default="ok")
    commands.add_parser("idle")
    getting = commands.add_parser("get")
    getting.add_argument("url")
    getting.add_argument("-H", dest="headers", action="append", default=[])
    getting.add_argument("-X", dest="method", default="GET")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port, args.text, args.host)
    elif args.command == "idle":
        idle()
    else:
        print(get(args.url, args.headers, args.method))
    return 0


if __name__ == "__main__":
    sys.exit(main())
