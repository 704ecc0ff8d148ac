/* The patient's on-demand page (issue 14): the intake step by step, then the virtual waiting room.
 *
 * room.js owns the socket, the token and the call; it announces every room view as a
 * "waitroom:ondemand" event on document (detail: the room.state body, with its `ondemand` block)
 * and lends its socket as WaitroomRoom.request(type, body). This script shows the intake step the
 * server says is next (`ondemand.step` saves one step's answers; the providers' lists fill in at
 * once), then the estimated wait, and explains a declined or withdrawn request. The Start Session
 * button after a claim is room.js's, the same on both sides.
 */
(function () {
  "use strict";

  const page = document.getElementById("room-page");
  if (!page || page.dataset.ondemand !== "1" || page.dataset.role !== "caller") return;
  const $ = (id) => document.getElementById(id);
  const S = JSON.parse($("od-strings").textContent);
  const forms = Array.from(document.querySelectorAll("form.od-step"));
  const SECONDS_PER_MINUTE = 60;
  let shownStep = null;
  let ended = false;

  function fmt(text, values) {
    return text.replace(/%\((\w+)\)s/g, (_, key) => (key in values ? values[key] : ""));
  }

  function showStep(index) {
    if (index === shownStep) return;
    shownStep = index;
    forms.forEach((form, i) => (form.hidden = i !== index));
    const form = forms[index];
    if (form) {
      const heading = form.querySelector("h2");
      if (heading) heading.focus();
    }
  }

  function estimateText(seconds) {
    if (seconds == null) return S.estimate_unknown;
    if (seconds < SECONDS_PER_MINUTE) return S.estimate_soon;
    return fmt(S.estimate, { minutes: String(Math.round(seconds / SECONDS_PER_MINUTE)) });
  }

  function showEnded(title, text) {
    const box = $("ended");
    if (!box) return;
    box.querySelector("h2").textContent = title;
    box.querySelector("p").textContent = text;
  }

  let last = null; /* the last ondemand block: the final "ended" state comes without one */

  function update(view) {
    const od = view.ondemand || last;
    last = od;
    $("od-connecting").hidden = true;
    if (view.state === "ended" || (od && (od.state === "declined" || od.state === "cancelled"))) {
      ended = true;
      const reason = (od && od.state) || view.reason;
      if (reason === "declined") {
        const why = od && od.reason ? " " + fmt(S.reason, { reason: od.reason }) : "";
        showEnded(S.declined_title, S.declined + why);
      } else if (reason === "cancelled") {
        showEnded(S.cancelled_title, S.cancelled);
      }
      return;
    }
    if (!od) return;
    const intake = od.state === "intake" && od.step < od.steps_total;
    $("od-intake").hidden = !intake;
    $("od-waiting").hidden = intake;
    $("od-cancel").hidden = false;
    if (intake) {
      showStep(od.step);
    } else {
      showStep(null);
      const estimate = $("od-estimate");
      estimate.hidden = false;
      estimate.textContent = estimateText(od.estimate);
      const status = $("waiting-status");
      if (od.state === "assigned") status.textContent = S.assigned;
      else if (od.claimed_by) status.textContent = fmt(S.claimed, { name: od.claimed_by });
    }
  }

  document.addEventListener("waitroom:ondemand", (event) => update(event.detail || {}));

  function values(form) {
    const out = {};
    for (const input of form.querySelectorAll("input[name]")) {
      if (input.type === "radio") {
        if (input.checked) out[input.name] = input.value;
        else if (!(input.name in out)) out[input.name] = "";
      } else if (input.type === "checkbox") {
        out[input.name] = input.checked ? "yes" : "";
      } else {
        out[input.name] = input.value.trim();
      }
    }
    return out;
  }

  forms.forEach((form, index) => {
    const error = form.querySelector("[data-step-error]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!window.WaitroomRoom) return;
      const submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      try {
        const reply = await WaitroomRoom.request("ondemand.step", { step: index, values: values(form) });
        error.hidden = true;
        update({ ondemand: Object.assign({}, WaitroomRoom.ondemand(), {
          step: reply.step, steps_total: reply.steps_total, state: reply.state,
        }) });
      } catch (failure) {
        error.textContent = failure.detail || S.failed;
        error.hidden = false;
        error.focus && error.setAttribute("tabindex", "-1");
        error.focus();
      } finally {
        submit.disabled = false;
      }
    });
  });

  $("od-cancel").hidden = true;
  $("od-cancel").addEventListener("click", async () => {
    if (ended || !window.WaitroomRoom || !window.confirm(S.confirm_cancel)) return;
    try {
      await WaitroomRoom.request("ondemand.cancel", {});
      showEnded(S.cancelled_title, S.cancelled);
    } catch (error) {
      /* the room.state that follows (or the next connection) says where things are */
    }
  });
})();
