"""What a team needs around the protocol: projects, accounts, policies, webhooks, audit, replication, UI.

Modules: ``kv`` (the store: SQLite or bucket objects), ``accounts`` (users, projects, roles, robots),
``usage`` (bytes per project), ``policies`` (immutable tags, quotas), ``retention`` (what to keep),
``webhooks`` (signed callbacks with retries), ``audit`` (the append-only log), ``replication`` (copies
to other registries), ``artifacts`` (attached artifact kinds), ``hooks`` (all of it wired into the
registry's writes), ``service`` (one object the server and the CLI open), ``ui`` with ``ui_data``,
``ui_pages`` and ``ui_assets`` (the web UI).
"""
