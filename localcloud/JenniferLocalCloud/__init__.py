"""LocalCloud: a loopback OpenStack-compatible cloud for the demo, the tests and the benchmarks.

It serves Keystone v3, Nova 2.1 (microversions up to 2.96), Glance v2 and a Neutron subset over
real HTTP on ``127.0.0.1:<random port>``, with all state in memory::

    from JenniferLocalCloud import LocalCloud

    with LocalCloud(token_ttl=3600, boot=False, sandbox_root=None, latency=0.0, seed=0) as cloud:
        conn = cloud.connect()                       # openstacksdk, password auth
        cloud.clouds_yaml_entry("v3oidcaccesstoken")  # or "password", "v3applicationcredential"

Public API (state parts can be driven directly by tests):

``cloud.start()`` / ``cloud.stop()`` / context manager; ``cloud.auth_url``, ``cloud.base_url``,
``cloud.port``; ``cloud.clouds_yaml_entry(auth_type)``; ``cloud.connect(auth_type)``.

``cloud.credentials``
    project/user/password, application credential id/secret, OIDC identity provider
    (``egi.eu``), protocol (``openid``) and an accepted access token;
    ``LocalCloud(oidc_access_tokens=(...))`` or ``cloud.add_oidc_access_token(tok)`` accept more.

Other ``LocalCloud(...)`` options: ``build_seconds`` (BUILD -> ACTIVE delay on the cloud clock,
default 0), ``delete_seconds`` (how long a DELETEd server stays listed with ``task_state =
deleting`` and counted in the usage, as in Nova; default 1; ``compute.finish_deletions()`` ends
them at once), ``host``/``port`` (default 127.0.0.1 and a random port), ``region_name``
(``RegionOne``), ``tick_seconds`` (how often builds and boots are advanced in the background).

``cloud.counters``
    requests per ``(service, method, path template)``: ``get()``, ``total(service=None)``,
    ``snapshot()``, ``reset()``.

``cloud.faults``
    ``http_error(500|503, service=, method=, path=, times=, probability=)``, ``timeout(seconds)``,
    ``drop_connection()``, ``expire_token()``, ``slow(seconds)``, ``random_errors(rate, seed=)``,
    ``error_next_vms(n)``, ``stick_next_vms_in_build(n)``, ``refuse_next_creates_for_quota(n)``,
    ``quota_recheck_next_vms(n)``, ``script([...])``; ``events``, ``count(kind)``, ``clear()``;
    ``latency`` (seconds added to every request).

``cloud.compute``
    ``servers`` dict, ``set_quota(instances=, cores=, ram=)`` (-1 = unlimited),
    ``add_flavor(name, vcpus, ram)``, ``add_keypair(user_id, name)``,
    ``add_server(name, project_id, status=, metadata=, created=)`` (fast seeding),
    ``set_state(server_id, "SHUTOFF"|"ERROR"|..., fault=)``, ``usage(project_id)``.
``cloud.identity``: ``expire_all_tokens()``; ``cloud.image.add_image(name)``;
``cloud.network.add_network(name)``; ``cloud.advance_time(seconds)`` moves the cloud clock.

Defaults: project and user ``jennifer`` in domain ``Default``, region ``RegionOne``; flavors
m1.tiny (1 vCPU/512 MB), m1.small (1/2048), m1.medium (2/4096), m1.large (4/8192), m1.xlarge
(8/16384); image ``EL9-x86_64``; network ``private`` (10.0.0.0/16); quota 10 instances, 20
cores, 51200 MB. Listing is Nova's: newest first, at most 1000 per page with ``servers_links``,
filters ``name`` (regex), ``status``, ``changes-since`` (deleted servers show as DELETED),
``changes-before``, ``image``, ``flavor``, ``tags``, ``tags-any``, ``limit``/``marker``.

With ``boot=True`` each server's user data (cloud-init MIME multipart, ``#cloud-config`` or a
``#!`` script) runs in a bubblewrap sandbox under ``sandbox_root`` once the server is ACTIVE; its
output is the console log (and ``/var/log/cloud-init-output.log`` inside) and the server goes
SHUTOFF when it exits. A server without user data stays ACTIVE. Inside: the host's /usr and
Python read-only; private writable /tmp, /home, /var, /run, /opt, /root, /srv, /mnt, /media and a
minimal /etc; ``/run/cloud-init/instance-data.json``, ``/var/lib/cloud/data/instance-id``; root
is an unprivileged host uid (a user namespace); a network of its own. ``cloud.booter.readable``
exposes host paths read-only (``cloud.booter.hidden`` masks paths inside them),
``cloud.booter.reachable`` the host addresses (``"127.0.0.1:PORT"``) the VMs may connect to,
``cloud.booter.limits`` their rlimits; ``cloud.booter.sandbox(server_id).fs`` is the VM's tree on
the host (see ``boot``; README: "LocalCloud's sandbox").

Standalone: ``python -m JenniferLocalCloud`` or ``jdirac-localcloud``
prints a ready ``clouds.yaml`` and serves until interrupted.
"""

__version__ = "0.2.0"


from .cloud import Credentials, LocalCloud

__all__ = ["LocalCloud", "Credentials"]
