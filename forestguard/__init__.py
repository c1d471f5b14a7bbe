"""ForestGuard: deforestation zones in, statistics, reports and maps out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("forestguard")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
