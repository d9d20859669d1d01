"""The build engine (layer L4): Dockerfile -> stage graph -> cached steps -> image.

``builder.engine.build(store, BuildOptions(...))`` is the entry point; ``builder.steps`` holds one
module per instruction family behind the ``Step``/``StepContext`` contract. The CLI's
``dockyard build`` only parses flags and renders the progress events (``dockyard.progress``).
"""
