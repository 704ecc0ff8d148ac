"""Staff sessions and CSRF for every page, decided by the Directory actor and nobody else.

Each request resolves its ``waitroom_session`` cookie once (``before_request``) by asking the
Directory; views then use :func:`require_staff` (or the :func:`staff_required` decorator) to get
the :class:`~actors.principal.Principal`, and templates call ``csrf_field()`` inside every form.

Every unsafe request (POST, PUT, PATCH, DELETE) must carry the CSRF token in the ``csrf_token``
form field (or the ``X-CSRF-Token`` header), checked before any view runs:

* signed in: the token belongs to the session and the Directory checks it (``CheckCsrf``);
* not signed in (the sign-in form, a caller's arrival form): a double-submit token, a random value
  in the ``waitroom_csrf`` cookie that the form must echo. A third-party site can neither read
  that cookie nor set it, so it cannot forge the form (this is what stops login CSRF).
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from markupsafe import Markup, escape
from quart import Response, current_app, g, redirect, request, url_for
from werkzeug.http import dump_cookie
from werkzeug.wrappers import Response as WerkzeugResponse

from actors import addresses
from actors.principal import Principal
from actors.staff.directory import CheckCsrf, DescribeSession, SessionView
from runtime import ActorError, ActorRef, Refusal, Registry
from web.i18n import N_

SESSION_COOKIE = "waitroom_session"
#: The session cookie's name over HTTPS: browsers accept a ``__Host-`` cookie only when it is
#: Secure, Path=/ and has no Domain, so no subdomain or plain-HTTP page can set or shadow it.
#: ``gateway.asgi`` reads the same two names.
SECURE_SESSION_COOKIE = "__Host-" + SESSION_COOKIE
ANON_CSRF_COOKIE = "waitroom_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: Random bytes in an anonymous CSRF token; as strong as a session's.
ANON_CSRF_BYTES = 32
#: How long a page waits for the Directory before showing "try again": a person is watching.
DIRECTORY_TIMEOUT = 5.0
#: How long a form a patient submitted to join (an arrival, Meet Now) may wait for its area or
#: queue. The 5 s of other page asks is less than a message for one may be held while it moves
#: to another node or starts again after its node died (``cluster.transport.HOLD_UNOWNED``,
#: 10 s): a form answered "Service busy" at 5 s could still be let in at 7 s (someone on the
#: dashboard whose page never got its room), and the person had to fill it in again. Waiting
#: longer loses neither; a page (GET) keeps the 5 s, as its busy page asks again by itself.
SUBMIT_TIMEOUT = 30.0
#: Longest cookie or token value looked at; anything longer is not ours.
MAX_TOKEN_LENGTH = 256

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

P = ParamSpec("P")
T = TypeVar("T")


class SignInRequired(Exception):
    """Raised by :func:`require_staff` for a stranger; the app answers with a redirect (or 401)."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


#: The status of a page whose actor did not answer (busy, or starting again on another node).
SERVICE_BUSY = 503


class WebError(Exception):
    """A page-level failure the error handler turns into a calm error page."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def registry() -> Registry:
    reg: Registry = current_app.extensions["waitroom.registry"]
    return reg


def directory() -> ActorRef:
    return registry().ref(addresses.DIRECTORY)


async def ask(address: str, message: object, timeout: float = DIRECTORY_TIMEOUT) -> object:
    """Ask an actor on behalf of the page; a runtime failure (not a Refusal) becomes a 503 page."""
    return await ask_through(registry(), address, message, timeout)


async def ask_through(
    actors: Registry, address: str, message: object, timeout: float = DIRECTORY_TIMEOUT
) -> object:
    """`ask` outside a Quart request (the arrival's lean path, :mod:`web.arrival_path`)."""
    try:
        return await actors.ref(address).ask(message, timeout=timeout)
    except Refusal:
        raise
    except ActorError as exc:
        raise WebError(
            SERVICE_BUSY,
            N_("Service busy"),
            N_("Waitroom could not answer in time. Please try again."),
        ) from exc


def cookie_is_secure() -> bool:
    """Secure cookies over HTTPS, and whenever the public URL says users reach us over HTTPS."""
    return secure_for(request.scheme, current_app.config.get("WAITROOM_PUBLIC_URL", ""))


def secure_for(scheme: str, public_url: str) -> bool:
    """`cookie_is_secure` for a request's scheme and the configured public URL."""
    return scheme in ("https", "wss") or public_url.startswith("https://")


def set_session_cookie(response: Response | WerkzeugResponse, session_id: str) -> None:
    secure = cookie_is_secure()
    response.set_cookie(
        SECURE_SESSION_COOKIE if secure else SESSION_COOKIE,
        session_id,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path="/",
    )


def clear_session_cookie(response: Response | WerkzeugResponse) -> None:
    """Forget both names: a deployment that moved to HTTPS may still hold the plain one."""
    secure = cookie_is_secure()
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="Lax", secure=secure, path="/")
    if secure:
        response.delete_cookie(
            SECURE_SESSION_COOKIE, httponly=True, samesite="Lax", secure=True, path="/"
        )


def session_cookie() -> str:
    value = request.cookies.get(SECURE_SESSION_COOKIE, "") or request.cookies.get(
        SESSION_COOKIE, ""
    )
    return value if len(value) <= MAX_TOKEN_LENGTH else ""


async def load_session() -> None:
    """``before_request``: resolve the session cookie once; ``g.session_view`` is None if absent."""
    g.session_view = None
    session_id = session_cookie()
    if session_id:
        try:
            view = await ask(addresses.DIRECTORY, DescribeSession(session_id))
        except Refusal:
            view = None
        g.session_view = view if isinstance(view, SessionView) else None


def current_principal() -> Principal | None:
    """The signed-in staff member of this request, or None."""
    view: SessionView | None = g.get("session_view")
    return None if view is None else view.principal


async def require_staff() -> Principal:
    """The signed-in staff member, or end the request: a redirect to sign-in (or 401 for API calls)."""
    principal = current_principal()
    if principal is None or not principal.is_staff:
        target = request.full_path if request.query_string else request.path
        raise SignInRequired(target)
    return principal


async def sign_in_required(error: SignInRequired) -> WerkzeugResponse | tuple[str, int]:
    """Error handler: pages redirect to sign-in and come back; other requests get a plain 401."""
    if request.method in SAFE_METHODS and request.accept_mimetypes.accept_html:
        return redirect(url_for("auth.sign_in", next=error.target), code=303)
    return "Sign in first.", 401


def staff_required(view: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorator: run the view only for signed-in staff; ``g.principal`` holds who it is."""

    @functools.wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        g.principal = await require_staff()
        return await view(*args, **kwargs)

    return wrapper


def _anonymous_token() -> str:
    token: str | None = g.get("anon_csrf")
    if token is None:
        token = anonymous_token_for(request.cookies.get(ANON_CSRF_COOKIE, ""))
        g.anon_csrf = token
    return token


def anonymous_token_for(existing: str) -> str:
    """The browser's anonymous CSRF token: the one its cookie holds, or a new one."""
    if 0 < len(existing) <= MAX_TOKEN_LENGTH:
        return existing
    return secrets.token_urlsafe(ANON_CSRF_BYTES)


def anonymous_cookie(token: str, secure: bool) -> str:
    """The ``Set-Cookie`` value pairing a new anonymous token with the browser (double submit)."""
    return dump_cookie(
        ANON_CSRF_COOKIE, token, httponly=True, samesite="Lax", secure=secure, path="/"
    )


def csrf_token() -> str:
    """The token the next form must carry: the session's, or this browser's anonymous one."""
    view: SessionView | None = g.get("session_view")
    return view.csrf_token if view is not None else _anonymous_token()


def csrf_field() -> Markup:
    """Template global: ``{{ csrf_field() }}`` inside every ``<form method="post">``."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        CSRF_FIELD, escape(csrf_token())
    )


def remember_anonymous_token(response: Response) -> Response:
    """``after_request``: if a page handed out an anonymous token, put it in the cookie it pairs with."""
    token: str | None = g.get("anon_csrf")
    if token is not None and request.cookies.get(ANON_CSRF_COOKIE) != token:
        response.headers.add("Set-Cookie", anonymous_cookie(token, cookie_is_secure()))
    return response


async def check_csrf() -> None:
    """``before_request`` (after ``load_session``): refuse any unsafe request without a valid token."""
    if request.method in SAFE_METHODS:
        return
    submitted = request.headers.get(CSRF_HEADER, "")
    if not submitted and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        submitted = (await request.form).get(CSRF_FIELD, "")
    if not submitted or len(submitted) > MAX_TOKEN_LENGTH:
        raise _csrf_refused()
    view: SessionView | None = g.get("session_view")
    if view is not None:
        try:
            await ask(addresses.DIRECTORY, CheckCsrf(session_cookie(), submitted))
        except Refusal as refusal:
            raise _csrf_refused() from refusal
        return
    if not anonymous_token_matches(request.cookies.get(ANON_CSRF_COOKIE, ""), submitted):
        raise _csrf_refused()


def anonymous_token_matches(cookie: str, submitted: str) -> bool:
    """The double-submit check of a form sent without a session: the token the form carried is
    the one the browser's cookie holds (also the arrival's lean path, :mod:`web.arrival_path`)."""
    if not cookie or not submitted or len(submitted) > MAX_TOKEN_LENGTH:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())


def _csrf_refused() -> WebError:
    return WebError(
        400,
        N_("This form has expired"),
        N_(
            "For your security the form could not be accepted. Go back, reload the page and "
            "try again."
        ),
    )
