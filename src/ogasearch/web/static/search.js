// The search form's conveniences; without JavaScript the form still works (pick, then Search).
// An image picked, dropped (anywhere on the page) or pasted is sent at once; changing a filter
// re-runs the current search; an image over the size limit is refused before it is sent.
"use strict";
(function () {
  const form = document.getElementById("search");
  if (!form) return;
  const input = document.getElementById("image");
  const text = document.getElementById("q");
  const drop = document.getElementById("drop");
  const message = document.getElementById("form-message");
  const maxBytes = Number(drop.dataset.maxBytes) || Infinity;

  function show(note) {
    message.textContent = note;
    message.hidden = false;
  }

  function send() {
    form.classList.add("busy");
    form.submit();
  }

  function searchFile(file) {
    if (!file) return;
    if (file.size > maxBytes) {
      const mb = (n) => (n / 1048576).toFixed(1) + " MiB";
      show("That image is " + mb(file.size) + "; the limit is " + mb(maxBytes) + ".");
      return;
    }
    if (input.files[0] !== file) {
      const chosen = new DataTransfer();
      chosen.items.add(file);
      input.files = chosen.files;
    }
    text.value = "";
    send();
  }

  input.addEventListener("change", () => searchFile(input.files[0]));

  let depth = 0;
  document.addEventListener("dragenter", (event) => {
    event.preventDefault();
    depth += 1;
    drop.classList.add("over");
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) drop.classList.remove("over");
  });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) {
      searchFile(file);
      return;
    }
    const url = (event.dataTransfer.getData("text/uri-list") || "").split("\n")[0].trim();
    if (/^https?:\/\//i.test(url)) {
      text.value = url;
      send();
    }
  });

  document.addEventListener("paste", (event) => {
    if (!event.clipboardData) return;
    for (const item of event.clipboardData.items) {
      if (item.kind === "file" && item.type.startsWith("image/")) {
        event.preventDefault();
        searchFile(item.getAsFile());
        return;
      }
    }
  });

  for (const select of form.querySelectorAll("select")) {
    select.addEventListener("change", send);
  }
})();
