"""autoray: benchmark-driven LLM routing.

The ``autoray`` package is the domain core and its adapters. It never imports Ray: Ray code
lives in the sibling packages ``actors`` and ``serve``.
"""

__version__ = "0.1.0"
