"""Languages: catalogues compile, the locale follows cookie > Accept-Language > English, the switch
persists, dates and durations follow the locale and the area's clock, the pseudo-locale marks all."""

from __future__ import annotations

from datetime import UTC, datetime

from babel.messages.pofile import read_po
from quart import render_template_string
from quart_trio import QuartTrio

from web import i18n


def make_app(pseudo: bool = False) -> QuartTrio:
    app = QuartTrio(__name__)
    app.config["WAITROOM_PSEUDO_LOCALE"] = pseudo
    i18n.init_app(app)
    i18n.init_app(app)  # idempotent: the factory may already have done it

    @app.get("/probe")
    async def probe() -> str:
        return await render_template_string(
            "{{ current_locale() }}|{{ _('Language') }}|{{ i18n_py }}",
            i18n_py=i18n.gettext("Language"),
        )

    return app


async def test_locale_defaults_to_english_and_follows_accept_language() -> None:
    client = make_app().test_client()
    plain = await client.get("/probe")
    assert (await plain.get_data(as_text=True)) == "en|Language|Language"
    ukr = await client.get("/probe", headers={"Accept-Language": "de;q=0.9, uk-UA;q=0.8, en;q=0.5"})
    assert (await ukr.get_data(as_text=True)) == "uk|Мова|Мова"
    unknown = await client.get("/probe", headers={"Accept-Language": "fr, de"})
    assert (await unknown.get_data(as_text=True)).startswith("en|")


async def test_switch_sets_a_lasting_cookie_and_only_redirects_on_this_site() -> None:
    client = make_app().test_client()
    response = await client.get("/lang/uk", query_string={"next": "/w/demo?x=1"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/w/demo?x=1"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{i18n.LANG_COOKIE}=uk")
    assert "Max-Age=31536000" in cookie
    # The cookie beats the browser's own language on every later request.
    later = await client.get("/probe", headers={"Accept-Language": "en"})
    assert (await later.get_data(as_text=True)).startswith("uk|Мова")
    evil = await client.get("/lang/en", query_string={"next": "//evil.example/"})
    assert evil.headers["Location"] == "/"
    bogus = await client.get("/lang/zz")
    assert "Set-Cookie" not in bogus.headers


async def test_pseudo_locale_only_when_enabled_and_decorates_every_msgid() -> None:
    off = make_app().test_client()
    await off.get("/lang/xx")
    assert (await (await off.get("/probe")).get_data(as_text=True)).startswith("en|")
    on = make_app(pseudo=True).test_client()
    await on.get("/lang/xx")
    body = await (await on.get("/probe")).get_data(as_text=True)
    assert body == "xx|[Ļàñĝûàĝé]|[Ļàñĝûàĝé]"
    assert i18n.pseudo_text("Wait %(minutes)s min {name}") == "[Ŵàîţ %(minutes)s mîñ {name}]"


def test_every_ukrainian_message_is_translated() -> None:
    with (i18n.LOCALES_DIR / "messages.pot").open("rb") as fp:
        template = read_po(fp)
    with (i18n.LOCALES_DIR / "uk" / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        ukrainian = read_po(fp, locale="uk")
    missing = []
    for message in template:
        if not message.id:
            continue
        found = ukrainian.get(message.id)
        strings = found.string if found is not None else ""
        parts = list(strings) if isinstance(strings, tuple) else [strings]
        if found is None or found.fuzzy or not all(parts):
            missing.append(message.id)
    assert missing == []


def test_dates_durations_and_weekdays_follow_locale_and_area_clock() -> None:
    instant = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)  # a Monday, 09:30 in Kyiv (UTC+2)
    assert i18n.format_time(instant, "Europe/Kyiv", locale="uk") == "09:30"
    assert i18n.format_time(instant, "Europe/London", locale="en") == "7:30\u202fAM"
    assert "березня" in i18n.format_date(instant, "Europe/Kyiv", locale="uk")
    assert i18n.format_duration(300, locale="uk") == "5 хвилин"
    assert i18n.format_duration(3600, locale="en") == "1 hour"
    assert i18n.weekday_name(0, locale="uk") == "Понеділок"
    assert i18n.weekday_name(6, locale="en") == "Sunday"
