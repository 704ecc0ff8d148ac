"""On-demand sessions in headless Chromium against a real ``waitroom serve`` (issue 14).

One server (its email going to a real local SMTP server, aiosmtpd) and one browser; each person has
a browser context of their own. The journey: the administrator sets up a two-step intake on the
settings page; a provider switches On call and the list appears; a patient opens the public page,
Meet Now, and walks the intake while the provider's list fills in live; the provider claims, both
see Start Session (the same button) and neither sees nor hears the other until both pressed it,
then they do. Then an administrator assigns a second request (the provider's bell rings: count,
list, a tone and a desktop notification) and declines a third (the patient's page says so, the
email arrives, the administrators' bell shows it). axe-core's WCAG 2.1 A/AA rules are checked on
every new page at a desktop and a phone size.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.actors.admin.test_outbox import Received, free_port
from tests.browser.a11y import DESKTOP as DESKTOP_SIZE
from tests.browser.a11y import assert_accessible_at_both_sizes
from tests.browser.test_waiting_area_journey import (
    DECODING_REMOTE_VIDEO,
    MEDIA_MS,
    PASSWORD,
    SEE_AND_HEAR,
    Person,
    Server,
    browser,  # noqa: F401 (the module's fixture)
    remote_peer,
    shot,
    wait_growing,
)
from tests.served import served

pytestmark = pytest.mark.browser

#: The desktop size of the accessibility checks, typed for Playwright.
DESKTOP = ViewportSize(width=DESKTOP_SIZE["width"], height=DESKTOP_SIZE["height"])

#: The issue's promise for live lists: a change shows within a second.
LIVE_UPDATE_MS = 1000
#: The decline email goes through the outbox's queue; it is tried at once on a quiet server.
EMAIL_S = 15.0
PATIENT_EMAIL = "ada@example.org"
FROM_ADDRESS = "reception@clinic.example"

#: Test instrumentation before any page script: every tone the bell plays and every desktop
#: notification it shows are recorded (notification permission is granted to the context).
RECORD_ALERTS = """(() => {
  window.__tones = 0;
  window.__notifications = [];
  const Audio = window.AudioContext;
  if (Audio) {
    const create = Audio.prototype.createOscillator;
    Audio.prototype.createOscillator = function () { window.__tones += 1; return create.call(this); };
  }
  const Native = window.Notification;
  if (Native) {
    window.Notification = class extends Native {
      constructor(title, options) { super(title, options); window.__notifications.push(options.body); }
    };
    Object.defineProperty(window.Notification, 'permission', { get: () => Native.permission });
    window.Notification.requestPermission = (...a) => Native.requestPermission(...a);
  }
})();"""
#: The page has made no RTCPeerConnection at all (RECORD_PEER_CONNECTIONS keeps each one).
NO_MEDIA = "() => (window.__pcs || []).length === 0"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, Received]]:
    received = Received()
    port = free_port()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, smtp: tuple[int, Received]
) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("ondemand") / "waitroom.sqlite3"
    env = {
        "WAITROOM_SMTP_HOST": "127.0.0.1",
        "WAITROOM_SMTP_PORT": str(smtp[0]),
        "WAITROOM_SMTP_FROM": FROM_ADDRESS,
    }
    with served(
        db,
        *("--media-port", "0", "--smtp-tls", "none"),
        *("--demo-password", PASSWORD, "--log-level", "WARNING"),
        env=env,
    ) as running:
        yield running


def someone(browser: Browser, *extra: str) -> Person:  # noqa: F811
    return Person(browser.new_context(permissions=["camera", "microphone", *extra]))


def staff_page(who: Person, server: Server, username: str, path: str) -> Page:
    page = who.page()
    page.add_init_script(RECORD_ALERTS)
    page.set_viewport_size(DESKTOP)
    page.goto(server.url + path)
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + path)
    return page


def set_up_intake(settings: Page) -> None:
    """The two-step intake the patients' tests walk: symptoms (one required), then consent."""
    settings.click("#add-step")
    settings.fill("#s0-title", "Your symptoms")
    settings.fill("#s0_f0_label", "Main symptom")
    settings.check("#s0_f0_required")
    settings.get_by_role("button", name="Add a question to step 1").click()
    settings.fill("#s0_f1_label", "Since when")
    settings.select_option("#s0_f1_kind", "choice")
    settings.fill("#s0_f1_choices", "Today\nThis week\nLonger")
    settings.click("#add-step")
    settings.fill("#s1-title", "Consent")
    settings.fill("#s1_f0_label", "I agree to a video consultation")
    settings.select_option("#s1_f0_kind", "consent")
    settings.check("#s1_f0_required")


def meet_now(page: Page, server: Server, name: str, email: str = "") -> None:
    page.goto(server.url + "/o/1")
    page.click("#meet-now")
    page.fill("#d-name", name)
    page.fill("#d-phone", "+44 20 7946 0000")
    page.fill("#d-region", "Kent")
    if email:
        page.fill("#d-email", email)
    page.click("#meet-form button[type=submit]")
    page.wait_for_url(re.compile(r"/o/1/meet/wait$"))
    # Connected: the room told the page which step is next.
    expect(page.locator('form.od-step[data-step="0"]')).to_be_visible()


def answer_intake(page: Page, symptom: str) -> None:
    step = page.locator('form.od-step[data-step="0"]')
    expect(step).to_be_visible()
    step.get_by_label("Main symptom").fill(symptom)
    step.get_by_label("This week").check()
    step.get_by_role("button", name="Save and continue").click()
    consent = page.locator('form.od-step[data-step="1"]')
    expect(consent).to_be_visible()
    consent.get_by_label("I agree to a video consultation").check()
    consent.get_by_role("button", name="Save and finish").click()
    expect(page.locator("#od-waiting")).to_be_visible()


def emails_to(received: Received, address: str) -> list[Message]:
    return [message_from_bytes(c) for _, rcpt, c in received.messages if address in rcpt]


def test_meet_now_claim_start_assign_and_decline(
    server: Server,
    browser: Browser,  # noqa: F811
    smtp: tuple[int, Received],
) -> None:
    admin, provider = someone(browser, "notifications"), someone(browser, "notifications")
    ada, bob, cleo = someone(browser), someone(browser), someone(browser)
    people = (admin, provider, ada, bob, cleo)
    timings: dict[str, float] = {}
    try:
        # -- the administrator sets up the intake, without any script on the page ----------------
        settings = staff_page(admin, server, "admin", "/ondemand/settings")
        expect(settings.locator("#no-steps")).to_be_visible()
        set_up_intake(settings)
        settings.fill("#o-alert", "30")
        assert_accessible_at_both_sizes(settings, "the on-demand settings")
        settings.click("#save-settings")
        expect(settings.locator("#settings-done")).to_have_text("Settings saved.")
        public_link = settings.locator("#od-public-link").inner_text()
        assert public_link.endswith("/o/1")
        shot(settings, "od-01-settings")

        # -- a provider goes on call: the tab appears, no reload ---------------------------------
        console = staff_page(provider, server, "provider", "/")
        expect(console.locator("#oncall-switch")).to_have_attribute("aria-checked", "false")
        expect(console.locator("#nav-ondemand")).to_be_hidden()
        assert_accessible_at_both_sizes(console, "the console with the On-Call switch and bell")
        console.click("#oncall-switch")
        expect(console.locator("#oncall-switch")).to_have_attribute("aria-checked", "true")
        expect(console.locator("#nav-ondemand")).to_be_visible()
        expect(console.locator("#console-ondemand")).to_be_visible()
        console.click("#nav-ondemand")
        requests = console
        requests.wait_for_url(server.url + "/ondemand")
        expect(requests.locator("#od-empty")).to_be_visible()
        assert_accessible_at_both_sizes(requests, "the On-Demand Requests list, empty")
        requests.click("#bell-button")  # the sound is allowed after this first click
        expect(requests.locator("#bell-panel")).to_be_visible()
        assert_accessible_at_both_sizes(requests, "the bell's panel")
        requests.click("#bell-button")

        # -- the patient: public page, Meet Now, the intake step by step -------------------------
        patient = ada.page()
        patient.set_viewport_size(DESKTOP)
        patient.goto(server.url + "/o/1")
        expect(patient.locator("#services")).to_contain_text("General Practice")
        assert_accessible_at_both_sizes(patient, "the public page")
        patient.click("#meet-now")
        assert_accessible_at_both_sizes(patient, "the Meet Now form")
        patient.fill("#d-name", "Ada Lovelace")
        patient.fill("#d-phone", "+44 20 7946 0000")
        patient.fill("#d-region", "Kent")
        started = time.monotonic()
        patient.click("#meet-form button[type=submit]")
        patient.wait_for_url(re.compile(r"/o/1/meet/wait$"))
        row = requests.locator(".od-row", has_text="Ada Lovelace")
        expect(row).to_be_visible(timeout=LIVE_UPDATE_MS)
        timings["request listed"] = time.monotonic() - started
        expect(row).to_contain_text("Filling in the intake")
        expect(row).to_contain_text("Nothing yet")
        expect(row).to_contain_text("+44 20 7946 0000")
        expect(row).to_contain_text("Kent")
        step = patient.locator('form.od-step[data-step="0"]')
        expect(step).to_be_visible()
        assert_accessible_at_both_sizes(patient, "the intake's first step")
        # A required answer left empty: the step says so and nothing is saved.
        step.get_by_role("button", name="Save and continue").click()
        expect(step.locator("[data-step-error]")).to_be_visible()
        assert_accessible_at_both_sizes(patient, "an intake step with an error")
        step.get_by_label("Main symptom").fill("Dry cough")
        step.get_by_label("This week").check()
        started = time.monotonic()
        step.get_by_role("button", name="Save and continue").click()
        expect(row).to_contain_text("Dry cough", timeout=LIVE_UPDATE_MS)
        timings["step in the list"] = time.monotonic() - started
        expect(row).to_contain_text("Main symptom")
        expect(row).to_contain_text("This week")
        consent = patient.locator('form.od-step[data-step="1"]')
        consent.get_by_label("I agree to a video consultation").check()
        consent.get_by_role("button", name="Save and finish").click()
        expect(patient.locator("#od-waiting")).to_be_visible()
        expect(patient.locator("#od-estimate")).to_contain_text("wait")
        expect(row).to_contain_text("Waiting", timeout=LIVE_UPDATE_MS)
        assert_accessible_at_both_sizes(patient, "the virtual waiting room")
        shot(patient, "od-02-waiting-room")
        shot(requests, "od-03-requests")

        # -- claim: both on the session page, nothing flows until both pressed Start Session -----
        row.get_by_role("button", name="Claim").click()
        requests.wait_for_url(re.compile(r"/ondemand/session/[^/]+$"))
        session = requests
        for page in (session, patient):
            expect(page.locator("#call")).to_be_visible()
            expect(page.locator("#start-session")).to_be_visible()
            expect(page.locator("#start-session")).to_have_text("Start Session")
        assert session.locator("#start-session").get_attribute("class") == (
            patient.locator("#start-session").get_attribute("class")
        )
        assert_accessible_at_both_sizes(session, "the provider's session page before the start")
        assert_accessible_at_both_sizes(patient, "the patient's session page before the start")
        session.click("#start-session")
        expect(session.locator("#start-session")).to_be_disabled()
        expect(session.locator("#session-start-text")).to_contain_text("other side")
        patient.wait_for_timeout(500)
        for page in (session, patient):
            assert page.evaluate(NO_MEDIA), "media before both pressed Start Session"
        patient.click("#start-session")
        for page in (session, patient):
            expect(page.locator("#session-start")).to_be_hidden()
            page.wait_for_function(DECODING_REMOTE_VIDEO, arg=1, timeout=MEDIA_MS)
        ada_peer = remote_peer(session, "Ada Lovelace")
        provider_peer = remote_peer(patient, "Dr Demo Provider")
        timings["patient sees+hears provider"] = wait_growing(
            patient, [provider_peer], SEE_AND_HEAR, "the patient sees and hears the provider"
        )
        timings["provider sees+hears patient"] = wait_growing(
            session, [ada_peer], SEE_AND_HEAR, "the provider sees and hears the patient"
        )
        assert_accessible_at_both_sizes(session, "the session page in the session")
        shot(patient, "od-04-session-patient")
        session.click("#end-call")
        expect(patient.locator("#ended")).to_be_visible()

        # -- assign: an administrator gives Bob's request to the on-call provider ----------------
        requests = provider.page()
        requests.add_init_script(RECORD_ALERTS)
        requests.goto(server.url + "/ondemand")
        requests.click("h1")  # a gesture: the page may play sound from now on
        bob_page = bob.page()
        meet_now(bob_page, server, "Bob Byron")
        answer_intake(bob_page, "Sore throat")
        board = admin.page()
        board.add_init_script(RECORD_ALERTS)
        board.goto(server.url + "/ondemand")
        board.click("h1")
        bob_row = board.locator(".od-row", has_text="Bob Byron")
        expect(bob_row).to_contain_text("Sore throat")
        assert_accessible_at_both_sizes(board, "the administrator's list")
        bob_row.get_by_label("On-call provider for Bob Byron").select_option(
            label="Dr Demo Provider"
        )
        bob_row.get_by_role("button", name="Assign").click()
        expect(bob_row).to_contain_text("Assigned to Dr Demo Provider")
        expect(requests.locator("#bell-count")).to_have_text("1", timeout=LIVE_UPDATE_MS)
        expect(requests.locator("#bell-button")).to_have_attribute(
            "aria-label", "Notifications, 1 unread"
        )
        requests.wait_for_function("() => window.__tones > 0")
        requests.wait_for_function("() => window.__notifications.length > 0")
        assert "Bob" in requests.evaluate("() => window.__notifications[0]")
        requests.click("#bell-button")
        notice = requests.locator(".bell__item").first
        expect(notice).to_contain_text("Bob")
        notice.get_by_role("button", name=re.compile("Mark read")).click()
        expect(requests.locator("#bell-count")).to_be_hidden()
        requests.click("#bell-button")
        mine = requests.locator(".od-row", has_text="Bob Byron")
        mine.get_by_role("button", name="Claim").click()
        requests.wait_for_url(re.compile(r"/ondemand/session/[^/]+$"))
        expect(bob_page.locator("#start-session")).to_be_visible()
        requests.click("#end-call")
        expect(bob_page.locator("#ended")).to_be_visible()

        # -- decline: the patient's page, their email, the administrators' bell ------------------
        cleo_page = cleo.page()
        meet_now(cleo_page, server, "Cleo Patra", email=PATIENT_EMAIL)
        cleo_row = board.locator(".od-row", has_text="Cleo Patra")
        expect(cleo_row).to_be_visible(timeout=LIVE_UPDATE_MS)
        cleo_row.get_by_label("Reason for declining Cleo Patra").fill("Please call the surgery")
        board.once("dialog", lambda dialog: dialog.accept())
        cleo_row.get_by_role("button", name="Decline").click()
        expect(cleo_row).to_have_count(0, timeout=LIVE_UPDATE_MS)
        expect(cleo_page.locator("#ended")).to_be_visible()
        expect(cleo_page.locator("#ended")).to_contain_text("Your request was declined")
        expect(cleo_page.locator("#ended")).to_contain_text("Please call the surgery")
        assert_accessible_at_both_sizes(cleo_page, "the declined request's page")
        shot(cleo_page, "od-05-declined")
        expect(board.locator("#bell-count")).not_to_be_hidden()
        board.click("#bell-button")
        expect(board.locator(".bell__item", has_text="Cleo")).to_contain_text("declined")
        deadline = time.monotonic() + EMAIL_S
        while not emails_to(smtp[1], PATIENT_EMAIL) and time.monotonic() < deadline:
            time.sleep(0.1)
        [mail] = emails_to(smtp[1], PATIENT_EMAIL)
        assert mail["From"] == FROM_ADDRESS
        payload = mail.get_payload(decode=True)
        assert isinstance(payload, bytes)
        body = payload.decode(mail.get_content_charset() or "utf-8")
        assert "declined" in body and "Please call the surgery" in body
    finally:
        for who in people:
            who.context.close()
        print("on-demand timings (s)", {k: round(v, 2) for k, v in timings.items()})

    for who in people:
        assert who.errors == [], who.errors


def test_public_pages_in_ukrainian(server: Server, browser: Browser) -> None:  # noqa: F811
    visitor = Person(browser.new_context(locale="uk-UA"))
    try:
        page = visitor.page()
        page.set_viewport_size(DESKTOP)
        page.goto(server.url + "/o/1")
        expect(page.locator("html")).to_have_attribute("lang", "uk")
        expect(page.locator("#meet-now")).to_have_text("Зустрітися зараз")
        assert_accessible_at_both_sizes(page, "the public page in Ukrainian")
        page.click("#meet-now")
        expect(page.locator("label[for=d-name]")).to_have_text("Ваше ім’я")
        assert_accessible_at_both_sizes(page, "the Meet Now form in Ukrainian")
    finally:
        visitor.context.close()
    assert visitor.errors == []


def test_unknown_organisation_gets_a_calm_page(server: Server, browser: Browser) -> None:  # noqa: F811
    visitor = Person(browser.new_context())
    try:
        page = visitor.page()
        response = page.goto(server.url + "/o/424242")
        assert response is not None and response.status == 404
        expect(page.locator("h1")).to_contain_text("Link not recognised")
    finally:
        visitor.context.close()


def test_a_patient_who_closes_the_tab_comes_back_to_their_place(
    server: Server,
    browser: Browser,  # noqa: F811
) -> None:
    patient, admin = someone(browser), someone(browser)
    try:
        # Run alone, the journey has not set up the intake this test walks back into.
        settings = staff_page(admin, server, "admin", "/ondemand/settings")
        if settings.locator("#no-steps").is_visible():
            set_up_intake(settings)
            settings.click("#save-settings")
            expect(settings.locator("#settings-done")).to_have_text("Settings saved.")
        page = patient.page()
        meet_now(page, server, "Dora Dorsey")
        page.close()
        again = patient.page()
        again.goto(server.url + "/o/1/meet")
        again.wait_for_url(re.compile(r"/o/1/meet/wait$"))
        expect(again.locator('form.od-step[data-step="0"]')).to_be_visible()
        # Leaving the queue ends the request: the page says so.
        again.once("dialog", lambda dialog: dialog.accept())
        again.click("#od-cancel")
        expect(again.locator("#ended")).to_contain_text("You have left the queue")
    finally:
        patient.context.close()
        admin.context.close()
    assert patient.errors == []
