"""Tools built on the library (layer L5): ``lint`` (hadolint-compatible Dockerfile linting)."""
