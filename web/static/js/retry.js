// A page Waitroom could not answer in time (a 503: busy, or starting again after a node died)
// asks again by itself after the seconds the server gave. After MAX_TRIES tries in a row it
// stops and leaves the "Try again now" link to the person; a try older than FORGET_MS starts
// the count again, so a later outage gets its own tries.
"use strict";
const MAX_TRIES = 12;
const FORGET_MS = 120000;
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("retry-status");
  const link = document.getElementById("retry-now");
  if (!status || !link) return;
  const key = "waitroom-retry:" + link.getAttribute("href");
  let record = { tries: 0, at: 0 };
  try {
    record = JSON.parse(sessionStorage.getItem(key) || "") || record;
  } catch (_error) { /* nothing stored yet */ }
  if (Date.now() - record.at > FORGET_MS) record = { tries: 0, at: 0 };
  if (record.tries >= MAX_TRIES) {
    sessionStorage.removeItem(key);
    status.textContent = status.dataset.gaveUp;
    return;
  }
  const seconds = Number(status.dataset.retryAfter) || 5;
  setTimeout(() => {
    sessionStorage.setItem(key, JSON.stringify({ tries: record.tries + 1, at: Date.now() }));
    window.location.replace(link.href);
  }, seconds * 1000);
});
