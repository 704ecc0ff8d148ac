/* The On-Demand Requests list (issue 14): every open request of the organisation, live.
 *
 * `ondemand.watch` answers the whole list (as does `ondemand.snapshot`, after the server watched
 * again for the page) and then the queue pushes `ondemand.request` (an upsert
 * of one request's whole state: created, each intake step saved, assigned, claimed),
 * `ondemand.removed` and `ondemand.providers` (docs/protocol.md "On-demand"). Longest wait first;
 * wait times tick here, counted from the server's `waited` (so a wrong clock on this computer does
 * not matter). Claim opens the session page; administrators also Assign to an on-call provider
 * and Decline. Every rule (who may, already claimed) is the queue's; refusals show as they are.
 */
(function () {
  "use strict";

  const section = document.getElementById("od-panel");
  if (!section || !window.WaitroomStaff) return;
  const $ = (id) => document.getElementById(id);
  const queue = "ondemand/" + section.dataset.orgId;
  const isAdmin = section.dataset.admin === "1";
  const labels = JSON.parse($("od-labels").textContent || "{}");
  const TICK_MS = 1000;
  const STATUS = {
    intake: "Filling in the intake",
    waiting: "Waiting",
    assigned: "Assigned",
    claimed: "Claimed",
    in_session: "In session",
  };

  const requests = new Map(); /* id -> request, with .since (local ms when waited was 0) */
  let providers = [];
  let alertAfter = 0;
  let watching = false;

  function showError(text) {
    $("od-error").textContent = text || "";
    $("od-error").hidden = !text;
  }

  function minutes(seconds) {
    return Math.max(1, Math.round(seconds / 60));
  }

  function waited(since) {
    const seconds = Math.max(0, Math.floor((Date.now() - since) / 1000));
    const m = Math.floor(seconds / 60);
    const s = String(seconds % 60).padStart(2, "0");
    return m >= 60 ? Math.floor(m / 60) + " h " + (m % 60) + " min" : m + ":" + s;
  }

  function statusText(r) {
    let text = STATUS[r.state] || r.state;
    if (r.state === "intake") text += " (step " + r.steps_done + " of " + r.steps_total + " done)";
    if (r.assigned_to && r.state === "assigned") text += " to " + r.assigned_to;
    if (r.claimed_by && (r.state === "claimed" || r.state === "in_session")) {
      text += " by " + r.claimed_by;
    }
    return text;
  }

  /* Past the organisation's alert threshold, and nobody is seeing them yet. */
  function isLate(since, state) {
    return alertAfter > 0 && (Date.now() - since) / 1000 > alertAfter && state !== "in_session" && state !== "claimed";
  }

  function remember(r) {
    r.since = Date.now() - (r.waited || 0) * 1000;
    requests.set(r.id, r);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function button(label, className, onClick, aria) {
    const b = el("button", "button " + className, label);
    b.type = "button";
    if (aria) b.setAttribute("aria-label", aria);
    b.addEventListener("click", onClick);
    return b;
  }

  function detail(list, term, value) {
    list.append(el("dt", "", term), el("dd", "", value || "—"));
  }

  function row(r) {
    const item = el("li", "od-row od-row--" + r.state);
    item.dataset.requestId = r.id;
    item.dataset.since = String(r.since);
    const name = r.name || "Patient";

    const head = el("div", "od-row__head");
    head.append(
      el("strong", "od-row__name", name),
      el("span", "od-row__wait", waited(r.since)),
      el("span", "od-row__status", statusText(r))
    );
    head.querySelector(".od-row__wait").dataset.wait = "";
    item.append(head);
    if (isLate(r.since, r.state)) {
      item.classList.add("od-row--late");
      head.append(el("strong", "od-row__late", "Waiting over " + minutes(alertAfter) + " min"));
    }

    const facts = el("dl", "od-row__facts");
    detail(facts, "Phone", r.phone);
    detail(facts, "State or region", r.region);
    item.append(facts);

    const caseBox = el("div", "od-row__case");
    caseBox.append(el("h3", "od-row__case-title", "Case information"));
    const entries = Object.entries(r.case || {});
    if (entries.length) {
      const list = el("dl", "od-row__answers");
      for (const [key, value] of entries) detail(list, labels[key] || key.replace(/_/g, " "), String(value));
      caseBox.append(list);
    } else {
      caseBox.append(el("p", "muted", "Nothing yet: the patient is still answering."));
    }
    item.append(caseBox);

    const open = r.state === "intake" || r.state === "waiting" || r.state === "assigned";
    if (open) {
      const actions = el("div", "od-row__actions");
      actions.append(button("Claim", "button--primary", () => claim(r.id), "Claim: " + name));
      if (isAdmin) {
        const select = el("select", "od-row__provider");
        select.setAttribute("aria-label", "On-call provider for " + name);
        const none = el("option", "", providers.length ? "Choose a provider" : "Nobody is on call");
        none.value = "";
        select.append(none);
        for (const p of providers) {
          const option = el("option", "", p.name);
          option.value = p.id;
          select.append(option);
        }
        actions.append(
          select,
          button("Assign", "button--quiet", () => assign(r.id, select.value), "Assign: " + name)
        );
        const reason = el("input", "od-row__reason");
        reason.type = "text";
        reason.maxLength = 500;
        reason.placeholder = "Reason (optional)";
        reason.setAttribute("aria-label", "Reason for declining " + name);
        actions.append(
          reason,
          button("Decline", "button--danger", () => decline(r.id, name, reason.value), "Decline: " + name)
        );
      }
      item.append(actions);
    }
    return item;
  }

  function render() {
    const sorted = Array.from(requests.values()).sort((a, b) => a.created_at - b.created_at);
    /* Keep what someone is typing or choosing in a row that is re-rendered. */
    const focused = document.activeElement;
    const keep = focused && focused.closest && focused.closest(".od-row");
    const keepId = keep ? keep.dataset.requestId : null;
    const kept = {};
    if (keepId) {
      for (const input of keep.querySelectorAll("input, select")) kept[input.className] = input.value;
    }
    $("od-rows").replaceChildren(...sorted.map(row));
    if (keepId) {
      const again = $("od-rows").querySelector('[data-request-id="' + CSS.escape(keepId) + '"]');
      if (again) {
        for (const input of again.querySelectorAll("input, select")) {
          if (input.className in kept) input.value = kept[input.className];
        }
        const same = again.querySelector("." + String(focused.className).split(" ").join("."));
        if (same) same.focus();
      }
    }
    $("od-count").textContent = String(sorted.length);
    $("od-empty").hidden = sorted.length > 0;
  }

  function showEstimate(estimate) {
    $("od-estimate").textContent =
      estimate == null ? "" : "Estimated wait for a new request: about " + minutes(estimate) + " min.";
  }

  setInterval(() => {
    let newlyLate = false;
    for (const item of $("od-rows").querySelectorAll(".od-row")) {
      const since = Number(item.dataset.since);
      item.querySelector("[data-wait]").textContent = waited(since);
      const r = requests.get(item.dataset.requestId);
      if (r && isLate(since, r.state) && !item.classList.contains("od-row--late")) newlyLate = true;
    }
    if (newlyLate) render();
  }, TICK_MS);

  /* -- actions --------------------------------------------------------------------------------- */
  async function claim(id) {
    try {
      const reply = await WaitroomStaff.wire.request("ondemand.claim", { request_id: id }, queue);
      window.location.href = reply.url;
    } catch (error) {
      showError(error.detail);
    }
  }

  async function assign(id, userId) {
    if (!userId) {
      showError("Choose an on-call provider to assign the request to.");
      return;
    }
    try {
      await WaitroomStaff.wire.request("ondemand.assign", { request_id: id, user_id: userId }, queue);
      showError("");
    } catch (error) {
      showError(error.detail);
    }
  }

  async function decline(id, name, reason) {
    if (!window.confirm("Decline the request of " + name + "? They are told by email and on their page.")) return;
    const body = { request_id: id };
    if (reason.trim()) body.reason = reason.trim();
    try {
      await WaitroomStaff.wire.request("ondemand.decline", body, queue);
      showError("");
    } catch (error) {
      showError(error.detail);
    }
  }

  /* -- the wire -------------------------------------------------------------------------------- */
  /* Shown while the list is theirs (admin, or on call): [data-od-on]; the off-call note: [data-od-off]. */
  function setOn(on) {
    for (const node of document.querySelectorAll("[data-od-on]")) node.hidden = !on;
    for (const node of document.querySelectorAll("[data-od-off]")) node.hidden = on;
  }

  function offCall() {
    watching = false;
    requests.clear();
    render();
    setOn(false);
  }

  /* The whole list: the answer to ondemand.watch, or ondemand.snapshot (the server watched
     again for this page after the queue restarted on another node). */
  function showList(list) {
    watching = true;
    showError("");
    setOn(true);
    providers = list.providers || [];
    alertAfter = list.alert_after || 0;
    requests.clear();
    for (const r of list.requests || []) remember(r);
    showEstimate(list.estimate);
    render();
  }

  async function watch(wire) {
    try {
      showList(await wire.request("ondemand.watch", {}, queue));
    } catch (error) {
      if (error.code === "not_on_call") offCall();
      else if (error.code !== "offline") showError(error.detail);
    }
  }

  WaitroomStaff.onStatus((status) => {
    $("od-status").textContent = status === "online" ? "" : "Reconnecting…";
  });
  WaitroomStaff.onReady(watch);
  document.addEventListener("waitroom:oncall", (event) => {
    if (event.detail.sees_list && !watching) watch(WaitroomStaff.wire);
    else if (!event.detail.sees_list) offCall();
  });

  const wire = WaitroomStaff.wire;
  wire.on("ondemand.request", (body) => {
    if (!watching || !body.request) return;
    remember(body.request);
    render();
  });
  wire.on("ondemand.snapshot", (body) => {
    if (watching) showList(body);
  });
  wire.on("ondemand.removed", (body) => {
    if (!requests.delete(body.id)) return;
    render();
  });
  wire.on("ondemand.providers", (body) => {
    providers = body.providers || [];
    render();
  });
})();
