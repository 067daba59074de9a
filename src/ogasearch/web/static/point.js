// Pointing at a part of the query picture (results pages of an image search).
// Dragging a box on the query picture searches only that part: the box form's corner fields
// (the keyboard way to do the same) are filled in picture pixels and the form is sent; the
// server re-runs the stored upload on that part and the box stays drawn. Pointing at (or
// focusing) a result found in a part of the picture draws where it was found.
"use strict";
(function () {
  const view = document.getElementById("query-view");
  const image = document.getElementById("query-image");
  const form = document.getElementById("box-form");
  if (!view || !image) return;
  const drawn = document.getElementById("drawn-box");
  const found = document.getElementById("found-box");
  const MIN_DRAG = 4; // screen pixels: a shorter drag is a click, not a box

  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

  function parse(text) {
    const parts = (text || "").split(",").map(Number);
    return parts.length === 4 && parts.every(Number.isFinite) ? parts : null;
  }

  // a box of screen pixels (relative to the picture) drawn on the picture
  function placeScreen(el, x0, y0, x1, y1) {
    el.style.left = image.offsetLeft + x0 + "px";
    el.style.top = image.offsetTop + y0 + "px";
    el.style.width = Math.max(1, x1 - x0) + "px";
    el.style.height = Math.max(1, y1 - y0) + "px";
    el.hidden = false;
  }

  // a box of picture pixels [x0, y0, x1, y1] drawn on the picture as it is shown
  function placePicture(el, box) {
    if (!image.naturalWidth) return;
    const sx = image.clientWidth / image.naturalWidth;
    const sy = image.clientHeight / image.naturalHeight;
    placeScreen(el, box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy);
  }

  function showSearched() {
    const box = parse(view.dataset.box);
    if (box) placePicture(drawn, box);
    else drawn.hidden = true;
  }
  if (image.complete) showSearched();
  else image.addEventListener("load", showSearched);
  window.addEventListener("resize", showSearched);

  // -- drawing a box ---------------------------------------------------------------------------
  let start = null;

  function at(event) {
    const r = image.getBoundingClientRect();
    return [clamp(event.clientX - r.left, 0, r.width), clamp(event.clientY - r.top, 0, r.height)];
  }

  image.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || !form) return;
    event.preventDefault();
    start = at(event);
    image.setPointerCapture(event.pointerId);
  });
  image.addEventListener("pointermove", (event) => {
    if (!start) return;
    const [x, y] = at(event);
    placeScreen(drawn, Math.min(start[0], x), Math.min(start[1], y), Math.max(start[0], x), Math.max(start[1], y));
  });
  image.addEventListener("pointercancel", () => {
    start = null;
    showSearched();
  });
  image.addEventListener("pointerup", (event) => {
    if (!start) return;
    const [x, y] = at(event);
    const [sx0, sy0] = start;
    start = null;
    if (Math.abs(x - sx0) < MIN_DRAG || Math.abs(y - sy0) < MIN_DRAG) {
      showSearched();
      return;
    }
    // screen pixels to the picture's own, widened to whole pixels and kept inside it
    const fx = image.naturalWidth / image.clientWidth;
    const fy = image.naturalHeight / image.clientHeight;
    const box = [
      clamp(Math.floor(Math.min(sx0, x) * fx), 0, image.naturalWidth - 1),
      clamp(Math.floor(Math.min(sy0, y) * fy), 0, image.naturalHeight - 1),
      clamp(Math.ceil(Math.max(sx0, x) * fx), 1, image.naturalWidth),
      clamp(Math.ceil(Math.max(sy0, y) * fy), 1, image.naturalHeight),
    ];
    ["x0", "y0", "x1", "y1"].forEach((name, i) => {
      document.getElementById("box-" + name).value = String(box[i]);
    });
    view.dataset.box = box.join(",");
    showSearched();
    form.classList.add("busy");
    form.submit();
  });

  // -- where a result was found ------------------------------------------------------------------
  for (const card of document.querySelectorAll(".result[data-query-box]")) {
    const box = parse(card.dataset.queryBox);
    if (!box) continue;
    const show = () => placePicture(found, box);
    const hide = () => {
      found.hidden = true;
    };
    card.addEventListener("mouseenter", show);
    card.addEventListener("mouseleave", hide);
    card.addEventListener("focusin", show);
    card.addEventListener("focusout", hide);
  }
})();
