/* Meet Now's details form: a patient who closed their tab and opens Meet Now again goes back to
 * their place in the queue (the token this device stored, as room.js keeps it). Submitting the
 * form is a new request: whatever this device stored for the organisation (maybe another
 * patient's, on a shared device) is forgotten first. As arrive.js does for waiting areas. */
(function () {
  "use strict";
  const section = document.getElementById("meet-form");
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
    if (visit && visit.token && section.dataset.waitUrl) window.location.replace(section.dataset.waitUrl);
  } catch (error) {
    /* storage unavailable: just show the form */
  }
})();
