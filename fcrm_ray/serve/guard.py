"""What every HTTP app of the serve kit checks before any work: the bearer token, the body's size
(413, also for chunked bodies), that it is readable JSON (400) within the shape limits (422 naming
the place), and `RequestError`, the client error that names the field to fix. Used by the reward
service (`fcrm serve`) and the Best-of-N gateway (`fcrm gateway`) alike."""

import hmac
import json
from typing import Any

from fastapi.responses import JSONResponse

from fcrm_ray.serve.schemas import error_location as loc_str

# Per-replica settings the reward ingress's HTTP middleware reads (set in RewardIngress.__init__;
# each replica is its own process, so this is not shared state between replicas).
SETTINGS: dict = {}


def reward_settings() -> dict:
    """`SETTINGS` of this process. The middleware and the ingress's __init__ reach the dict only
    through module-level functions (this one, `set_reward_settings`): Serve pickles an ingress's
    app apart from its class, and by value, so a dict named directly would be two copies; a
    module-level function is pickled by reference and finds this module's dict in the replica."""
    return SETTINGS


def set_reward_settings(**settings) -> None:
    SETTINGS.update(settings)


class RequestError(Exception):
    """A client error: HTTP status + the field to fix."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message

    def response(self):
        headers = {"Retry-After": "1"} if self.status == 503 else None
        return JSONResponse({"detail": str(self), "field": self.field}, status_code=self.status, headers=headers)



def token_ok(header: str, token: str) -> bool:
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def route(settings: dict, path: str) -> str:
    return (settings.get("route_prefix") or "/").rstrip("/") + path


def parse_body(body: bytes, limits=None) -> Any:
    """JSON body -> value. 400 if it is not JSON we can read; 422 naming the place if it breaks a
    shape limit (depth, string or name length)."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "body", "not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise RequestError(400, "body", f"malformed JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise RequestError(400, "body", "JSON nested too deeply") from None
    except ValueError as e:  # e.g. an integer over Python's 4,300-digit conversion limit
        raise RequestError(400, "body", f"unreadable JSON value: {str(e)[:120]}") from None
    if limits is not None:
        check_shape(data, limits)
    return data


def _where(path: tuple) -> str:
    if not path:
        return "body"
    return error_location(path[:8]) + ("..." if len(path) > 8 else "")  # deep paths: the way in


def error_location(loc: tuple) -> str:
    return loc_str(loc)


def check_shape(data: Any, lim) -> None:
    """Walk the parsed body once (iteratively: no recursion a hostile body can exhaust) and
    enforce limits.max_json_depth / max_string_chars / max_name_chars."""
    stack = [(data, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if len(node) > lim.max_string_chars:
                raise RequestError(422, _where(path), f"string of {len(node)} characters exceeds "
                                                      f"limits.max_string_chars={lim.max_string_chars}")
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > lim.max_json_depth:
            raise RequestError(422, _where(path), f"nested deeper than limits.max_json_depth={lim.max_json_depth}")
        if isinstance(node, list):
            stack.extend((v, path + (i,), depth + 1) for i, v in enumerate(node))
            continue
        for k, v in node.items():
            if len(k) > lim.max_name_chars or (k == "name" and isinstance(v, str) and len(v) > lim.max_name_chars):
                what = "key" if len(k) > lim.max_name_chars else "name"
                n = len(k) if what == "key" else len(v)
                raise RequestError(422, _where(path + ((k[:40],) if what == "name" else ())),
                                   f"{what} of {n} characters exceeds limits.max_name_chars={lim.max_name_chars}")
            stack.append((v, path + (k,), depth + 1))


def validation_error(e, prefix: tuple = ()) -> RequestError:
    first = e.errors()[0]
    return RequestError(422, error_location(prefix + tuple(first["loc"])), first["msg"])


def check_len(value: Any, limit: int, field: str, key: str) -> None:
    if isinstance(value, list) and len(value) > limit:
        raise RequestError(422, field, f"{len(value)} entries exceed limits.{key}={limit}")



async def read_body(request, limit: int) -> bytes:
    """The request body, read chunk by chunk and refused (413) as soon as it passes `limit`:
    a chunked upload carries no content-length, and must not be held whole before the check."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "body", f"more than limits.max_body_bytes={limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)



def add_guard(api, settings, public_paths: tuple[str, ...] = ("/healthz",)) -> None:
    """Install the auth + size-limit middleware on a FastAPI app. It reads `settings` (token,
    max_body_bytes, route_prefix; a dict, or a function returning one) on every request, so an
    ingress fills them in its __init__; paths in `public_paths` (under the route prefix) need no
    token. (Serve pickles an ingress's app apart from its class: a module-level function is
    resolved in the replica by reference, so it reaches what __init__ filled.)"""

    @api.middleware("http")
    async def guard(request, call_next):
        # Auth and the size limit run before routing and body parsing, for every route but the
        # public readiness probe (which says only whether the app can serve).
        s = settings() if callable(settings) else settings
        token = s.get("token") or ""
        if token and request.url.path.rstrip("/") not in {route(s, p) for p in public_paths}:
            if not token_ok(request.headers.get("authorization", ""), token):
                return JSONResponse({"detail": "missing or wrong bearer token (header `Authorization`)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        length = request.headers.get("content-length")
        limit = s.get("max_body_bytes", 0)
        if length and limit and length.isdigit() and int(length) > limit:
            return JSONResponse({"detail": f"body: {length} bytes exceeds limits.max_body_bytes={limit}",
                                 "field": "body"}, status_code=413)
        return await call_next(request)
