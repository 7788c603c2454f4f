"""moto's S3 API server for the tests, with its writes made atomic as S3's own are.

moto checks a conditional write (`If-None-Match: *`, `If-Match`) and then stores the object
in two steps, on one thread per request: two creations of the same name at once could both
succeed (seen once in the storage suite's "one creation wins" rounds), which S3 never allows.
Here each request that writes (PUT, POST, DELETE) runs alone, after reading its body when
it says its length (a chunked body is read under the lock); reads stay concurrent.

Usage: python moto-s3.py HOST PORT (with moto's own Python, which has moto[server]).
"""

import io
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

WRITES = threading.Lock()


def serialized(app):
    def wsgi(environ, start_response):
        if environ.get("REQUEST_METHOD") not in ("PUT", "POST", "DELETE"):
            return app(environ, start_response)
        # The body is read before the lock is taken: a slow client holds no other writer up.
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = environ["wsgi.input"].read(int(length))
            environ["wsgi.input"] = io.BytesIO(body)
        with WRITES:
            # The response is made whole under the lock: moto does its work as it is iterated.
            response = app(environ, start_response)
            try:
                return list(response)
            finally:
                if hasattr(response, "close"):
                    response.close()

    return wsgi


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(
        host,
        port,
        serialized(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
