/* Arrival page: a caller who closed their tab and opens the link again goes back to their place. */
(function () {
  "use strict";
  const section = document.getElementById("arrive");
  if (!section) return;
  const key = "waitroom.visit." + section.dataset.slug;
  try {
    const visit = JSON.parse(window.localStorage.getItem(key) || "null");
    if (visit && visit.token) {
      window.location.replace(window.location.pathname.replace(/\/$/, "") + "/wait");
    }
  } catch (error) {
    /* storage unavailable: just show the form */
  }
})();
