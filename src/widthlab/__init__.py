"""widthlab: what happens to neural networks as they get wide."""

__version__ = "0.1.0"
