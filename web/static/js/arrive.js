/* Arrival page: a caller who closed their tab and opens the link again goes back to their place.
 * Submitting the form is a new arrival: whatever visit this device stored for the area (maybe
 * another patient's, on a shared device) is forgotten first. */
(function () {
  "use strict";
  const section = document.getElementById("arrive");
  if (!section) return;
  const key = "waitroom.visit." + section.dataset.slug;
  const form = section.querySelector("form");
  if (form) {
    form.addEventListener("submit", function () {
      try {
        window.localStorage.removeItem(key);
      } catch (error) {
        /* storage unavailable: nothing stored */
      }
    });
  }
  try {
    const visit = JSON.parse(window.localStorage.getItem(key) || "null");
    if (visit && visit.token) {
      window.location.replace(window.location.pathname.replace(/\/$/, "") + "/wait");
    }
  } catch (error) {
    /* storage unavailable: just show the form */
  }
})();
