"""A local helper that lets the browser present a user certificate: it listens on plain HTTP on
loopback and makes each GET to the fleet page over TLS with the given client certificate (or
none), returning the fleet page's answer, or 502 with the TLS error when the handshake or the
request is refused.

Why a helper rather than the browser's own NSS database: with the user's certificate imported
into $HOME/.pki/nssdb (pk12util), headless Chromium 156 waits for ever on the certificate
selection dialog it cannot show; only the AutoSelectCertificateForUrls policy skips it, and
Chromium reads that policy only from /etc/chromium/policies/managed, machine-wide."""

from __future__ import annotations

import http.client
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def client_context(ca_file: str, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if cert:
        context.load_cert_chain(cert, key)
    return context


class CertPresentingHelper:
    def __init__(self, target_host: str, target_port: int, context: ssl.SSLContext):
        helper = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status, headers, body = helper.fetch(self.path)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.target = (target_host, target_port)
        self.context = context
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def fetch(self, path: str):
        connection = http.client.HTTPSConnection(*self.target, context=self.context, timeout=20)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            keep = [
                (k, v)
                for k, v in response.getheaders()
                if k.lower() in ("content-type", "content-security-policy")
            ]
            return response.status, keep, response.read()
        except (ssl.SSLError, OSError) as exc:
            text = f"<html><body><h1>TLS refused</h1><p id='tls-error'>{type(exc).__name__}: {exc}</p></body></html>"
            return 502, [("Content-Type", "text/html")], text.encode()
        finally:
            connection.close()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
