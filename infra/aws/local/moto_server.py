"""moto's DynamoDB, Secrets Manager and SSM server for Latchkey's tests, one request at a time.

moto's DynamoDB backend has no locks: behind werkzeug's threaded server the check of a
conditional write and its update can interleave with another request's, so two
compare-and-swaps at the same version can both succeed. Real DynamoDB never does
that, and the store's tests exist to catch exactly that kind of race, so every request
here runs under one lock (connections are still accepted and read concurrently).

Usage: python moto_server.py [-H 127.0.0.1] -p PORT [--exit-with-stdin]

With --exit-with-stdin the server exits when its stdin reaches end of file, so a test
process that started it with a pipe never leaves it behind, however the test ends.
"""

import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app


def serialised(app):
    lock = threading.Lock()

    def wrapped(environ, start_response):
        with lock:
            # Materialise the body inside the lock: moto's work happens while iterating.
            return [b"".join(app(environ, start_response))]

    return wrapped


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--exit-with-stdin", action="store_true")
    args = parser.parse_args()
    if args.exit_with_stdin:
        def watch_stdin():
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)

        threading.Thread(target=watch_stdin, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, serialised(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
