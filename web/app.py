"""The Quart app factory: pages for staff and callers, static assets, ``/healthz``.

The web layer never owns long-lived work and never touches storage: every view asks actors through
the :class:`~runtime.registry.Registry` it is given and renders the reply. Blueprints per area of
the UI register here; other blueprints use :mod:`web.security` for sessions and CSRF.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from quart import Response, render_template, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from runtime import Registry
from web import security
from web.http_connection import LeanHTTPConnection
from web.i18n import N_

#: Largest request body a page accepts: forms are a few KiB; nothing uploads files through pages.
MAX_CONTENT_LENGTH = 256 * 1024

#: Sent with every page: no framing by other sites, no MIME sniffing, no referrer leaking a link
#: (waiting-area slugs and invite links are secrets), camera and microphone only for ourselves.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}

#: Browsers remember "HTTPS only" for a year (the preload lists' minimum); no includeSubDomains,
#: because other services of the clinic's domain are not ours to decide for.
HSTS_MAX_AGE = 365 * 24 * 3600


def _always_ready() -> bool:
    return True


def _no_ice_servers() -> list[dict[str, object]]:
    return []


def _one_node() -> str | None:
    return None


@dataclass(frozen=True)
class WebConfig:
    """What pages need to know about the deployment (the composition root fills it in)."""

    #: Base URL people use to reach the server (links in pages, leaflets); "" means "as requested".
    public_url: str = ""
    service_name: str = "Waitroom"
    #: Whether the websocket gateway is mounted and accepting connections, for ``/healthz``.
    gateway_ready: Callable[[], bool] = field(default=_always_ready)
    #: A cluster node's link to Redis for ``/healthz``, "ok" or "unavailable"; None on one node.
    cluster_status: Callable[[], str | None] = field(default=_one_node)
    #: Fresh TURN/STUN servers for a page's RTCPeerConnection (services.turn); none by default.
    ice_servers: Callable[[], list[dict[str, object]]] = field(default=_no_ice_servers)
    #: "all", or "relay" (TURN only: tests of the TURN path and of the failure notice).
    ice_transport_policy: str = "all"


def create_app(registry: Registry, config: WebConfig | None = None) -> QuartTrio:
    """Build the app. ``registry`` is how pages reach actors; the app holds no other state."""
    import web.setup
    from web import account, admin, auth, dashboard, health, home, i18n, leaflet, patient, share

    cfg = config if config is not None else WebConfig()
    app = QuartTrio(__name__)
    app.asgi_http_class = LeanHTTPConnection  # issue 17
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
        WAITROOM_PUBLIC_URL=cfg.public_url.rstrip("/"),
        WAITROOM_SERVICE_NAME=cfg.service_name,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.extensions["waitroom.registry"] = registry
    app.extensions["waitroom.config"] = cfg

    # The locale first: a request refused by the hooks below (an expired form) is answered in
    # the caller's language.
    i18n.init_app(app)
    app.before_request(security.load_session)
    app.before_request(security.check_csrf)
    app.after_request(security.remember_anonymous_token)
    app.after_request(_security_headers)
    app.add_template_global(security.csrf_field, "csrf_field")
    app.add_template_global(security.current_principal, "current_principal")
    app.add_template_global(public_url, "public_url")
    app.add_template_global(ice_config, "ice_config")
    app.register_error_handler(security.WebError, _web_error)
    app.register_error_handler(security.SignInRequired, security.sign_in_required)
    app.register_error_handler(HTTPException, _http_error)

    app.register_blueprint(auth.blueprint)
    app.register_blueprint(home.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(patient.blueprint)
    app.register_blueprint(dashboard.blueprint)
    app.register_blueprint(leaflet.blueprint)
    app.register_blueprint(share.blueprint)
    app.register_blueprint(web.setup.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(account.blueprint)
    from web import (
        consult,  # issue 13: Consult Now links (and its console section)
        group,  # issue 12: group consultations (and its console section)
        meetings,  # issue 13: meeting rooms and user rooms (and console sections)
        ondemand,  # issue 14: on-demand pages (and its console section)
    )

    app.register_blueprint(ondemand.blueprint)
    app.register_blueprint(meetings.blueprint)
    app.register_blueprint(consult.blueprint)
    app.register_blueprint(group.blueprint)
    _no_thread_per_request(app)  # issue 17
    return app


def _no_thread_per_request(app: QuartTrio) -> None:
    """Quart runs every sync hook in a worker thread: a thread hop on every request for
    ``remember_anonymous_token`` and, on every page render, for the sync context processor Flask's
    blueprint base class gives each blueprint (it reads Flask's contexts, which are never set
    under Quart, so it always returns ``{}``). Profiled at 40 arrivals/s, these hops were about
    6 % of the server's samples (issue 17). The remaining hooks run on the loop."""
    import flask.templating

    for processors in app.template_context_processors.values():
        processors[:] = [
            p for p in processors if p is not flask.templating._default_template_ctx_processor
        ]
    hooks = app.after_request_funcs[None]
    hooks[:] = [
        _on_loop(hook) if hook is security.remember_anonymous_token else hook for hook in hooks
    ]


def _on_loop(hook: Callable[[Response], Response]) -> Callable[[Response], Awaitable[Response]]:
    async def run(response: Response) -> Response:
        return hook(response)

    return run


def public_url(path: str = "") -> str:
    """An absolute URL for ``path``: the configured public URL, else the one this request used."""
    from quart import current_app

    base: str = current_app.config["WAITROOM_PUBLIC_URL"] or request.host_url.rstrip("/")
    return base + path


def ice_config() -> dict[str, object]:
    """What a room page's media.js gives RTCPeerConnection: TURN servers with fresh credentials
    (a page asks once, at load) and the transport policy (data-ice, docs/media.md "TURN")."""
    from quart import current_app

    return ice_for(current_app.extensions["waitroom.config"])


def ice_for(cfg: WebConfig) -> dict[str, object]:
    """`ice_config` of a deployment, outside a request (the arrival's lean path)."""
    return {"iceServers": cfg.ice_servers(), "iceTransportPolicy": cfg.ice_transport_policy}


async def _security_headers(response: Response) -> Response:
    for name, value in page_headers(request.path, security.cookie_is_secure()).items():
        response.headers.setdefault(name, value)
    return response


def page_headers(path: str, secure: bool) -> dict[str, str]:
    """The headers every page gets unless its view set its own (the arrival's lean path,
    :mod:`web.arrival_path`, sends them as they are)."""
    headers = dict(SECURITY_HEADERS)
    if path != "/healthz":
        headers["Cache-Control"] = "no-store"
    if secure:
        # Served over HTTPS, or behind a proxy whose public URL is https: never over plain HTTP,
        # where the header means nothing and would pin a test set-up to HTTPS.
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE}"
    return headers


#: Seconds before a page that could not be answered asks again by itself (and its Retry-After).
RETRY_AFTER = 5


async def _web_error(error: security.WebError) -> tuple[str, int, dict[str, str]]:
    """The calm error page. A page that was busy (an actor starting again after a node died, or
    overloaded) is worth asking for again: a GET says so, with a link to try again, and its
    script reloads it after ``RETRY_AFTER`` s, so a caller who opened the link mid-recovery
    lands on the form without doing anything. No meta refresh: WCAG 2.2.1 forbids one."""
    retry = error.status == security.SERVICE_BUSY and request.method == "GET"
    page = await render_template(
        "error.html",
        title=error.title,
        detail=error.detail,
        retry_url=request.full_path.rstrip("?") if retry else None,
        retry_after=RETRY_AFTER,
    )
    headers = {"Retry-After": str(RETRY_AFTER)} if error.status == security.SERVICE_BUSY else {}
    return page, error.status, headers


_MESSAGES = {
    401: (N_("Please sign in"), N_("This page is for signed-in staff.")),
    403: (N_("Not allowed"), N_("Your account does not have access to this page.")),
    404: (
        N_("Page not found"),
        N_("There is nothing at this address. Check the link and try again."),
    ),
    405: (N_("Not allowed"), N_("This page cannot be used that way.")),
    413: (N_("Too much data"), N_("The form sent more than Waitroom accepts.")),
}


async def _http_error(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    title, detail = _MESSAGES.get(status, (error.name, error.description or ""))
    return await render_template("error.html", title=title, detail=detail), status
