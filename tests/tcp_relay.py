"""A TCP relay in front of a server that a test can cut, as a crash or a network fault would."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass  # cut
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


class Relay:
    """A TCP relay in front of ``upstream``. ``cut()`` resets every connection through it and
    refuses new ones, as a crashed or unreachable server does; ``restore()`` accepts again
    on the same port."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # cut
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self.open += [client, server]
            for pair in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=pair, daemon=True).start()

    def cut(self) -> None:
        with contextlib.suppress(OSError):  # OSError: cut already
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); then refused
        self.listener.close()
        with self._lock:
            for end in self.open:  # linger 0: closed with a reset, as by a server gone
                end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                end.close()
            self.open.clear()

    def restore(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
