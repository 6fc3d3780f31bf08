"""Request body limits, enforced while the body streams in: a pure ASGI middleware.

Why a middleware and not the routes: FastAPI reads and parses a body (JSON in memory, a
multipart upload spooled to disk) before any route or dependency runs, and a chunked body
has no Content-Length to check. So a declared length over the route's limit is refused at
once, unread; otherwise the bytes are counted as the app reads them, and the request is
answered 413 the moment the count passes the limit. Nothing is buffered here: each message
goes on as it arrives. Uploads also take one of a few slots before any byte is read (503
when none is free), so the memory that concurrent uploads hold is bounded too.

A response that starts before the request body was read to its end says ``Connection:
close``: the HTTP server (uvicorn, in Serve's proxy) then closes the connection after it,
instead of reading and discarding whatever the client keeps sending. Behind HAProxy
(``ray.haproxy``: a replica's own uvicorn serves HTTP) the guard that faces the server is
made with ``keep_connection`` and takes that header off: HAProxy 2.8, still forwarding the
body when the replica closes, can be left holding the answer while it stops reading the
client's upload, so that a client which reads its response only after sending (httpx,
requests) waits for its own timeout. Kept open, uvicorn reads and discards the rest (what
HAProxy 3 does itself), and the answer arrives when the upload ends.

Behind Ray Serve the proxy reads a client's body into an unbounded queue as fast as it
arrives, and the replica pulls it from there as fast as it can, neither waiting for the
app. Both stop as soon as the replica's response is complete (the proxy cancels its reader,
the replica its fetch task), so answering early here bounds them too; ``proxy.py`` puts the
same guard in the proxy, for when the replica cannot answer early.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ray import serve
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuneserve.errors import PayloadTooLarge, TuneserveError, Unavailable
from tuneserve.serving.errors import error_response
from tuneserve.settings import LimitSettings, Settings

# an upload's multipart framing: boundaries, part headers, the purpose and task fields
MULTIPART_ALLOWANCE = 64 * 1024
Route = tuple[str, str]  # (method, path without the app's root path or a trailing slash)
DISCONNECT = {"type": "http.disconnect"}
AnswerStart = Callable[[Message], Message]  # how a response start goes out, body unread


@dataclass(frozen=True)
class BodyRule:
    """What one route accepts: body bytes, and how many requests may read one at once."""

    max_bytes: int
    max_concurrent: int | None = None  # None: no bound besides the deployment's own
    param: str | None = None  # the request field a 413 names


@dataclass(frozen=True)
class BodyRules:
    default: BodyRule
    routes: dict[Route, BodyRule] = field(default_factory=dict)

    @classmethod
    def from_limits(cls, limits: LimitSettings) -> BodyRules:
        """JSON routes take ``max_json_body_bytes``; an upload its file plus the framing."""
        upload = BodyRule(
            limits.max_upload_bytes + MULTIPART_ALLOWANCE, limits.max_concurrent_uploads, "file"
        )
        return cls(BodyRule(limits.max_json_body_bytes), {("POST", "/v1/files"): upload})

    def rule_for(self, route: Route) -> BodyRule:
        return self.routes.get(route, self.default)


def replica_rules() -> BodyRules:
    """The rules of the replica this app runs in: its settings exist only there."""
    return BodyRules.from_limits(serve.get_replica_context().servable_object.settings.limits)


def install_body_limit(app, rules: Callable[[], BodyRules] = replica_rules) -> None:
    """Add the middleware; install it before the access log, so that it logs the 413s."""
    app.add_middleware(BodyLimit, rules=rules)


def proxy_rules() -> BodyRules:
    """The rules of Serve's HTTP proxy itself (``proxy.py``), which knows no app or route
    prefix: one cap for every path, the largest body any route takes, by the limits of the
    environment (``TUNESERVE_LIMITS__*``; the proxy is an entry point).
    """
    rules = BodyRules.from_limits(Settings().limits)
    cap = max(rule.max_bytes for rule in (rules.default, *rules.routes.values()))
    # the same cap everywhere; a route the gateway names a field for keeps that name (at
    # the root prefix), since under load the proxy may pass its cap before the app answers
    named = {route: BodyRule(cap, param=rule.param) for route, rule in rules.routes.items()}
    return BodyRules(BodyRule(cap), named)


class BodyLimit:
    """Pure ASGI (it wraps ``receive``): never reads or holds a body itself.

    ``rules`` is called on the first request. The slot counts are this instance's, so per
    process: one gateway replica.
    """

    def __init__(self, app: ASGIApp, rules: Callable[[], BodyRules], keep_connection: bool = False):
        self.app = app
        self._unread_answer = _keeping if keep_connection else _closing
        self._make_rules = rules
        self._rules: BodyRules | None = None
        self._reading: Counter[Route] = Counter()  # requests holding a slot, per slotted route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._rules is None:
            self._rules = self._make_rules()
        route = (scope["method"], _route_path(scope))
        rule = self._rules.rule_for(route)
        declared = _content_length(scope)
        if declared is not None and declared > rule.max_bytes:
            message = f"the request body is {declared} bytes; {_name(route)} accepts at most"
            too_large = PayloadTooLarge(f"{message} {rule.max_bytes}", param=rule.param)
            await _answer(send, too_large, self._unread_answer)
            return
        if rule.max_concurrent is None:  # not counted: a scan of random paths adds no keys
            await self._counted(scope, receive, send, rule)
            return
        if self._reading[route] >= rule.max_concurrent:
            busy = f"{rule.max_concurrent} requests to {_name(route)} are being read already"
            unavailable = Unavailable(f"{busy}; retry shortly", retry_after_s=1)
            await _answer(send, unavailable, self._unread_answer)
            return
        self._reading[route] += 1
        try:
            await self._counted(scope, receive, send, rule)
        finally:
            self._reading[route] -= 1

    async def _counted(self, scope: Scope, receive: Receive, send: Send, rule: BodyRule) -> None:
        await _CountedRequest(scope, receive, send, rule, self._unread_answer).run(self.app)


class _CountedRequest:
    """One request whose body is counted as the app reads it."""

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, rule: BodyRule, answer: AnswerStart
    ):
        self.scope, self.rule, self._unread_answer = scope, rule, answer
        self._receive, self._send = receive, send
        self.received = 0
        self.body_done = not _has_body(scope)
        self.started = False  # a response has begun (the app's or the 413)
        self.refused = False

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            if not self.refused:
                raise
            # the app failed on the body refused under it; the client has its answer

    async def receive(self) -> Message:
        """The next message; past the limit, the end of the connection (to the app, the
        client left: the body stops here, unread, and the app's answer goes nowhere)."""
        if self.refused:
            return DISCONNECT
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.body_done = not message.get("more_body", False)
            if self.received > self.rule.max_bytes:
                await self._refuse()
                return DISCONNECT
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the 413 went out instead (or, begun already, the response is cut)
        if message["type"] == "http.response.start":
            self.started = True
            if not self.body_done:
                message = self._unread_answer(message)
        await self._send(message)

    async def _refuse(self) -> None:
        self.refused = True
        if not self.started:
            self.started = True
            route = (self.scope["method"], _route_path(self.scope))
            message = f"the request body passed {self.rule.max_bytes} bytes, the most "
            reason = f"{message}{_name(route)} accepts; the rest was not read"
            too_large = PayloadTooLarge(reason, param=self.rule.param)
            await _answer(self._send, too_large, self._unread_answer)


async def _answer(send: Send, error: TuneserveError, unread_answer: AnswerStart) -> None:
    """Send ``error`` in the project's shape while the request body is unread."""
    response = error_response(error)
    start = {"type": "http.response.start", "status": response.status_code}
    await send(unread_answer(start | {"headers": response.raw_headers}))
    await send({"type": "http.response.body", "body": response.body})


def _closing(start: Message) -> Message:
    """The response start, saying ``Connection: close`` (the request body is unread)."""
    return {**start, "headers": [*_keeping(start)["headers"], (b"connection", b"close")]}


def _keeping(start: Message) -> Message:
    """The response start without ``Connection: close``: the server keeps reading."""
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"connection"]
    return {**start, "headers": headers}


def _route_path(scope: Scope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.rstrip("/") or "/"


def _name(route: Route) -> str:
    return f"{route[0]} {route[1]}"


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key.lower() == name), None)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when absent (chunked) or unreadable (then counted)."""
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _has_body(scope: Scope) -> bool:
    if _header(scope, b"transfer-encoding") is not None:
        return True
    declared = _content_length(scope)
    return declared is not None and declared > 0
