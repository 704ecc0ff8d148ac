/* Small helpers of the group session pages that are plain forms (issue 12): start times in the
 * reader's own clock, the new-session form's time zone preset to the browser's, the leaflet
 * links printing that clock, "Copy link", and forms that ask before they act (data-confirm).
 * Every page works without it: times then read in UTC and the forms post as they are. */
(function () {
  "use strict";

  const zone = (() => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      return "";
    }
  })();

  for (const time of document.querySelectorAll("time[data-local-time]")) {
    const at = new Date(time.dateTime);
    if (Number.isNaN(at.getTime())) continue;
    time.textContent = at.toLocaleString(document.documentElement.lang || undefined, {
      dateStyle: "medium",
      timeStyle: "short",
    });
  }

  const select = document.querySelector("select[data-browser-zone]");
  if (select && zone && select.value === "UTC" && select.querySelector('option[value="' + CSS.escape(zone) + '"]')) {
    select.value = zone;
  }

  if (zone) {
    for (const link of document.querySelectorAll("a[data-leaflet]")) {
      const url = new URL(link.href, window.location.href);
      url.searchParams.set("tz", zone);
      link.href = url.pathname + url.search;
    }
  }

  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const input = document.getElementById(button.dataset.copy);
      const status = document.getElementById("copy-status");
      try {
        await navigator.clipboard.writeText(input.value);
      } catch (error) {
        input.select();
        document.execCommand("copy");
      }
      if (status) status.textContent = "Link copied.";
    });
  }

  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
})();
