/* The On-Call switch beside the staff member's name (issue 14), live over the staff socket.
 *
 * Without JavaScript it is a form post (web/ondemand.py); with it, a click sends `ondemand.oncall`
 * to the organisation's queue and the header's On-Demand Requests link appears or goes at once.
 * The page hears it as a "waitroom:oncall" event on document (detail: {on, sees_list}), which the
 * requests list uses to start or stop watching.
 */
(function () {
  "use strict";

  const form = document.getElementById("oncall");
  if (!form || !window.WaitroomStaff) return;
  const button = document.getElementById("oncall-switch");
  const link = document.getElementById("nav-ondemand");
  const queue = "ondemand/" + form.dataset.orgId;
  let busy = false;

  function show(on, seesList) {
    button.setAttribute("aria-checked", String(on));
    form.querySelector("input[name=on]").value = on ? "no" : "yes";
    if (link) link.hidden = !seesList;
    document.dispatchEvent(new CustomEvent("waitroom:oncall", { detail: { on: on, sees_list: seesList } }));
  }

  form.addEventListener("submit", async (event) => {
    const wire = WaitroomStaff.wire;
    if (!wire.ready) return; /* offline: let the form post do it */
    event.preventDefault();
    if (busy) return;
    busy = true;
    const on = button.getAttribute("aria-checked") !== "true";
    try {
      const reply = await wire.request("ondemand.oncall", { on: on }, queue);
      show(Boolean(reply.on), Boolean(reply.sees_list));
    } catch (error) {
      button.title = error.detail || "";
    } finally {
      busy = false;
    }
  });
})();
