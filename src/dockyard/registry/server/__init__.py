"""An embedded OCI registry (distribution spec 1.1): ``dockyard registry serve``, and a test fixture.

Use it in-process, e.g. in a pytest fixture; it binds a free loopback port and serves on its own
thread, so synchronous and asyncio tests alike can talk to ``server.url``::

    from dockyard.registry.server import RegistryServer

    @pytest.fixture
    def registry(tmp_path):
        with RegistryServer(storage=tmp_path / "registry") as server:
            yield server  # server.url: "http://127.0.0.1:<port>"; server.address: "127.0.0.1:<port>"

Options (``ServerConfig``): ``htpasswd`` (bcrypt file: Basic auth), ``token_policy`` (JSON policy:
Bearer tokens from ``<url>/token``), ``tls_cert``/``tls_key``, ``proxy_remote`` (pull-through mirror),
``delete_enabled``, ``gc_interval``/``gc_grace``, ``upload_ttl``, ``access_log``, ``clock`` (what "now"
is for expiry and grace periods; tests move it on instead of sleeping), ``team`` (projects, roles,
robots, policies, webhooks, audit, replication: ``team/``) and ``ui`` (the web UI at ``/``). Inside a
running asyncio loop use ``await server.async_start()`` / ``await server.async_stop()`` instead of
``start()``.

Storage is a directory, or ``storage="s3://bucket/prefix"`` (``s3storage``, settings from ``s3config``;
several servers may share one bucket).

Modules: ``storage`` (the ``Storage`` protocol, ``FilesystemStorage``), ``s3storage`` and ``s3config``
(the S3 driver), ``s3http`` (its small-object requests, signed by botocore, without boto3), ``relay``
(blob bytes streamed from the object store), ``app`` (the HTTP API),
``uploads`` (session locks and running hashes), ``iopool`` (the worker threads all file I/O runs on),
``auth`` (htpasswd, token issuer, policy), ``gc`` (mark and sweep), ``proxy`` (pull-through cache),
``server`` (lifecycle), ``hooks`` (what the API tells and asks around writes), ``team/`` (what a
team needs around the protocol; its ``__init__`` lists its modules).
"""

from .gc import GcReport, collect
from .server import RegistryServer, ServerConfig, parse_addr
from .storage import FilesystemStorage, Storage

__all__ = ["FilesystemStorage", "GcReport", "RegistryServer", "ServerConfig", "Storage", "collect",
           "parse_addr"]
