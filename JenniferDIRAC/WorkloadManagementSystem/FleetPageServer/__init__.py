"""The fleet page: a read-only HTML view of the cloud fleet for DIRAC operators.

Why a small ASGI app here and not a page of DIRAC's WebApp (where VMDIRAC had its VM pages):
the WebApp runs on Tornado as DIRACOS2 ships it and cannot run from a PyPI installation, which is
what this extension supports (see dev/loopback's notes). So the page is served like the VM
endpoint, by uvicorn (what DiracX serves with), on a port of its own, next to the endpoint, and
does what the WebApp would do: TLS with a client certificate the DIRAC CA issued (X509_CERT_DIR),
the certificate's DN mapped to a Registry user, access only if one of the user's groups has the
``Operator`` property (DIRAC's property for operator pages and commands). Nothing is writable:
every method but GET and HEAD is refused.

Parts: access.py (certificate -> DIRAC user with Operator), fleet.py (what VMDB and the
VMDirector's metrics say), render.py (HTML with Jinja2 autoescaping: VM-supplied text is
hostile), app.py (routes), server.py (uvicorn with client-certificate TLS).
"""
