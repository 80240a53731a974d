"""laicbench: a benchmark harness for language-assisted image clustering (LAIC).

Methods (CLIP K-means, TAC, the 2026 relational method, ...) are plugins behind one registry; they
receive identical cached features from an open_clip backbone and return cluster labels, which
laicbench scores and stores as one JSON record per run.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("laicbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
