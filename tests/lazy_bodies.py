"""Request bodies of any size made lazily, for the tests of size limits: never held whole."""

from __future__ import annotations

from collections.abc import Iterator

KiB, MiB, GiB = 2**10, 2**20, 2**30
BOUNDARY = "tuneserve-test-boundary"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


class Source:
    """A lazy body of ``total`` bytes in 64 KiB chunks; ``sent`` is what the client took."""

    def __init__(self, total: int, head: bytes = b"", tail: bytes = b""):
        self.total, self.head, self.tail = total, head, tail
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"x" * (64 * KiB)
        for piece in self._pieces(chunk):
            self.sent += len(piece)
            yield piece

    def _pieces(self, chunk: bytes) -> Iterator[bytes]:
        yield self.head
        left = self.total - len(self.head) - len(self.tail)
        while left > 0:
            yield chunk[:left]
            left -= len(chunk)
        yield self.tail


def upload_source(total: int) -> Source:
    """A multipart upload of ``total`` bytes in all (framing included): a purpose, a file."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="rows.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return Source(total, head, f"\r\n--{BOUNDARY}--\r\n".encode())
