"""tauon: host many Spin WebAssembly HTTP applications in one process."""

__version__ = "0.1.0"
