"""The build engine (layer L4): Dockerfile -> stage graph -> cached steps -> image.

``build.engine.build(client, BuildOptions(...))`` is the entry point; the CLI's ``dockyard build``
only parses flags and renders progress events.
"""
