// "Copy link" on the share page: the Clipboard API, falling back to selecting the text.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("copy-link");
  if (!button) return;
  const input = document.getElementById(button.dataset.target);
  const status = document.getElementById("copy-status");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(input.value);
      status.textContent = "Copied.";
    } catch (_error) {
      input.select();
      status.textContent = "Press Ctrl+C (⌘C on a Mac) to copy.";
    }
  });
});
