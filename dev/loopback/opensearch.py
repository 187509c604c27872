"""An in-memory stand-in for the small part of the OpenSearch REST API that DIRAC uses.

DIRAC 9.1's JobMonitoring and JobStateUpdate services refuse to start without
``WorkloadManagement/JobParametersDB``, an OpenSearch index, and no OpenSearch server can be
installed from the package registries this project uses. This server answers the calls
opensearch-py makes for JobParametersDB: cluster info, index templates, index create/exists,
document index/get/exists/update/delete and multi-get. Data lives in memory only.

    python -m dev.loopback.opensearch --port 9200
"""

from __future__ import annotations

import argparse
import json
import threading
from dataclasses import dataclass, field

from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

VERSION = "2.11.0"


@dataclass
class Store:
    """Indices -> documents, guarded by one lock."""

    indices: dict[str, dict[str, dict]] = field(default_factory=dict)
    templates: dict[str, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _missing_index(index: str) -> Response:
    return _json(
        {
            "error": {
                "type": "index_not_found_exception",
                "reason": f"no such index [{index}]",
                "index": index,
            },
            "status": 404,
        },
        404,
    )


def _doc_body(index: str, doc_id: str, source: dict | None) -> dict:
    if source is None:
        return {"_index": index, "_id": doc_id, "found": False}
    return {
        "_index": index,
        "_id": doc_id,
        "_version": 1,
        "_seq_no": 0,
        "_primary_term": 1,
        "found": True,
        "_source": source,
    }


class OpenSearchStandIn:
    """The WSGI application."""

    def __init__(self) -> None:
        self.store = Store()
        self.url_map = Map(
            [
                Rule("/", endpoint="root"),
                Rule("/_index_template/<name>", endpoint="template"),
                Rule("/_template/<name>", endpoint="template"),
                Rule("/_mget", endpoint="mget"),
                Rule("/<index>/_mget", endpoint="mget"),
                Rule("/<index>/_doc/<doc_id>", endpoint="doc"),
                Rule("/<index>/_doc", endpoint="doc_auto"),
                Rule("/<index>/_update/<doc_id>", endpoint="update"),
                Rule("/<index>/_refresh", endpoint="refresh"),
                Rule("/<index>", endpoint="index"),
            ],
            strict_slashes=False,
        )

    def __call__(self, environ, start_response):
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
        except Exception:
            response = _json({"error": f"unsupported path {request.path}", "status": 400}, 400)
        else:
            response = getattr(self, f"on_{endpoint}")(request, **args)
        if request.method == "HEAD":
            response.set_data(b"")
        return response(environ, start_response)

    @staticmethod
    def _body(request: Request) -> dict:
        data = request.get_data()
        return json.loads(data) if data else {}

    def on_root(self, request: Request) -> Response:
        return _json(
            {
                "name": "loopback",
                "cluster_name": "loopback",
                "cluster_uuid": "loopback",
                "version": {"distribution": "opensearch", "number": VERSION},
                "tagline": "stand-in",
            }
        )

    def on_refresh(self, request: Request, index: str) -> Response:
        return _json({"_shards": {"total": 1, "successful": 1, "failed": 0}})

    def on_template(self, request: Request, name: str) -> Response:
        with self.store.lock:
            if request.method in ("PUT", "POST"):
                self.store.templates[name] = self._body(request)
                return _json({"acknowledged": True})
            if name not in self.store.templates:
                return _json({}, 404)
            return _json({"index_templates": [{"name": name, "index_template": self.store.templates[name]}]})

    def on_index(self, request: Request, index: str) -> Response:
        with self.store.lock:
            if request.method == "PUT":
                if index in self.store.indices:
                    return _json({"error": {"type": "resource_already_exists_exception"}, "status": 400}, 400)
                self.store.indices[index] = {}
                return _json({"acknowledged": True, "shards_acknowledged": True, "index": index})
            if request.method == "DELETE":
                self.store.indices.pop(index, None)
                return _json({"acknowledged": True})
            if index not in self.store.indices:
                return _missing_index(index)
            return _json({index: {"settings": {}, "mappings": {}}})

    def _store_doc(self, index: str, doc_id: str, source: dict) -> Response:
        with self.store.lock:
            docs = self.store.indices.setdefault(index, {})
            result = "updated" if doc_id in docs else "created"
            docs[doc_id] = source
        return _json(
            {
                "_index": index,
                "_id": doc_id,
                "_version": 1,
                "result": result,
                "_shards": {"total": 1, "successful": 1, "failed": 0},
            },
            201 if result == "created" else 200,
        )

    def on_doc_auto(self, request: Request, index: str) -> Response:
        with self.store.lock:
            doc_id = str(sum(len(d) for d in self.store.indices.values()) + 1)
        return self._store_doc(index, doc_id, self._body(request))

    def on_doc(self, request: Request, index: str, doc_id: str) -> Response:
        if request.method in ("PUT", "POST"):
            return self._store_doc(index, doc_id, self._body(request))
        with self.store.lock:
            if index not in self.store.indices:
                return _missing_index(index)
            docs = self.store.indices[index]
            if request.method == "DELETE":
                found = docs.pop(doc_id, None) is not None
                return _json(
                    {"_index": index, "_id": doc_id, "result": "deleted" if found else "not_found"},
                    200 if found else 404,
                )
            source = docs.get(doc_id)
        return _json(_doc_body(index, doc_id, source), 200 if source is not None else 404)

    def on_update(self, request: Request, index: str, doc_id: str) -> Response:
        body = self._body(request)
        with self.store.lock:
            docs = self.store.indices.get(index, {})
            if doc_id not in docs:
                if "upsert" in body or body.get("doc_as_upsert"):
                    docs[doc_id] = dict(body.get("upsert") or body.get("doc") or {})
                    self.store.indices[index] = docs
                    return _json({"_index": index, "_id": doc_id, "result": "created"}, 201)
                return _json({"error": {"type": "document_missing_exception"}, "status": 404}, 404)
            docs[doc_id].update(body.get("doc", {}))
            # JobParametersDB removes a parameter with a painless "ctx._source.remove('name')" script.
            script = body.get("script", {})
            source = script.get("source", "") if isinstance(script, dict) else str(script)
            if "remove" in source:
                for name in (script.get("params") or {}).values():
                    docs[doc_id].pop(name, None)
        return _json({"_index": index, "_id": doc_id, "result": "updated"})

    def on_mget(self, request: Request, index: str | None = None) -> Response:
        body = self._body(request)
        wanted = [(d.get("_index", index), str(d["_id"])) for d in body.get("docs", [])]
        wanted += [(index, str(i)) for i in body.get("ids", [])]
        with self.store.lock:
            docs = [_doc_body(idx, did, self.store.indices.get(idx, {}).get(did)) for idx, did in wanted]
        return _json({"docs": docs})


def serve(host: str, port: int) -> None:
    server = make_server(host, port, OpenSearchStandIn(), threaded=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="In-memory OpenSearch stand-in for DIRAC's JobParametersDB")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
