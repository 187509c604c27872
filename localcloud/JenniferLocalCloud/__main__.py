"""Run LocalCloud standalone and print a ready ``clouds.yaml``.

``python -m JenniferLocalCloud [--port 8774] [--boot] ...`` or
``jdirac-localcloud``. Serves until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

import yaml

from .cloud import LocalCloud
from .faults import VM_KINDS, FaultInjector

AUTH_TYPES = ("password", "v3applicationcredential", "v3oidcaccesstoken")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jdirac-localcloud", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free random port)")
    parser.add_argument("--cloud-name", default="localcloud", help="name of the cloud in clouds.yaml")
    parser.add_argument("--auth-type", choices=(*AUTH_TYPES, "all"), default="password",
                        help="auth method of the clouds.yaml entry; 'all' writes one cloud per method")
    parser.add_argument("--clouds-yaml", type=Path,
                        help="write clouds.yaml to this file (mode 0600) instead of standard output")
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="token lifetime in seconds")
    parser.add_argument("--build-seconds", type=float, default=0.0, help="BUILD -> ACTIVE delay")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--seed", type=int, default=0, help="seed for ids and random faults")
    parser.add_argument("--boot", action="store_true", help="run user data in sandboxed VMs (bubblewrap)")
    parser.add_argument("--sandbox-root", type=Path, help="where booted VMs' sandboxes live")
    parser.add_argument("--quota-instances", type=int, help="instances quota (-1 = unlimited)")
    parser.add_argument("--quota-cores", type=int, help="cores quota (-1 = unlimited)")
    parser.add_argument("--quota-ram", type=int, help="RAM quota in MB (-1 = unlimited)")
    parser.add_argument("--servers", type=int, default=0, help="seed this many ACTIVE servers")
    parser.add_argument("--oidc-access-token", action="append", default=[], metavar="TOKEN",
                        help="accept this OIDC access token too (repeatable)")
    parser.add_argument("--fault", action="append", default=[], metavar="JSON",
                        help="a request fault rule as JSON, e.g. "
                             "'{\"kind\": \"lost_response\", \"service\": \"compute\", \"method\": \"POST\", "
                             "\"path\": \"/servers\", \"probability\": 0.1, \"times\": null, \"delay\": 3}' "
                             "(fields of FaultRule; repeatable; seeded from --seed)")
    parser.add_argument("--vm-fault", action="append", default=[], metavar="KIND=RATE",
                        help=f"each server created meets fate KIND ({', '.join(VM_KINDS)}) with "
                             "probability RATE, e.g. error=0.05 or stuck=0.02 (repeatable; seeded from --seed)")
    return parser


def apply_fault_options(faults: FaultInjector, rules: list[str], vm_faults: list[str]) -> None:
    """Load --fault and --vm-fault into the injector; ValueError names the bad option."""
    for text in rules:
        try:
            step = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"--fault {text!r} is not JSON: {exc}") from None
        if not isinstance(step, dict) or "kind" not in step:
            raise ValueError(f"--fault {text!r} must be a JSON object with a \"kind\"")
        step.setdefault("times", None)
        kind = step.pop("kind")
        try:
            faults.add(kind, **step)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--fault {text!r}: {exc}") from None
    for text in vm_faults:
        kind, sep, rate = text.partition("=")
        try:
            if not sep:
                raise ValueError("use KIND=RATE")
            faults.vm_fate_rate(kind.strip(), float(rate))
        except ValueError as exc:
            raise ValueError(f"--vm-fault {text!r}: {exc}") from None


def clouds_yaml(cloud: LocalCloud, name: str, auth_type: str) -> str:
    kinds = AUTH_TYPES if auth_type == "all" else (auth_type,)
    clouds = {(name if len(kinds) == 1 else f"{name}-{kind}"): cloud.clouds_yaml_entry(kind) for kind in kinds}
    return yaml.safe_dump({"clouds": clouds}, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.port < 0 or args.port > 65535:
        print(f"jdirac-localcloud: --port must be 0..65535, got {args.port}", file=sys.stderr)
        return 2
    cloud = LocalCloud(token_ttl=args.token_ttl, boot=args.boot, sandbox_root=args.sandbox_root,
                       latency=args.latency, seed=args.seed, build_seconds=args.build_seconds,
                       host=args.host, port=args.port,
                       oidc_access_tokens=tuple(args.oidc_access_token))
    cloud.compute.set_quota(instances=args.quota_instances, cores=args.quota_cores, ram=args.quota_ram)
    try:
        apply_fault_options(cloud.faults, args.fault, args.vm_fault)
    except ValueError as exc:
        print(f"jdirac-localcloud: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with cloud:
        for i in range(args.servers):
            cloud.compute.add_server(f"seeded-{i:05d}", cloud.project_id)
        text = clouds_yaml(cloud, args.cloud_name, args.auth_type)
        if args.clouds_yaml:
            args.clouds_yaml.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(args.clouds_yaml, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            print(f"# clouds.yaml written to {args.clouds_yaml}", flush=True)
        else:
            sys.stdout.write(text)
        print(f"# LocalCloud ready at {cloud.auth_url} (Ctrl-C to stop)", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
