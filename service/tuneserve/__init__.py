"""tuneserve: model serving with online fine-tuning on Ray."""

__version__ = "0.1.0"
