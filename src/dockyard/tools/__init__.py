"""Tools built on the library (layer L5), one subpackage each: ``lint``, ``analyze``, ``scan``, ``watch``.

They may import the library (L0-L4), never the CLI, and never print.
"""
