// The map of all the art: Leaflet (vendored) over the server's pre-rendered tiles, in
// CRS.Simple map units (the square [0, 256) is zoom 0's one tile; lat = -y, lng = x).
// Region labels per zoom, a click opens the image's card, ?highlight= marks result images.
(function () {
  "use strict";
  const el = document.getElementById("map");
  if (!el || !window.L) return;
  const maxZoom = Number(el.dataset.maxZoom);
  const world = L.latLngBounds([-256, 0], [0, 256]);
  const map = L.map(el, {
    crs: L.CRS.Simple, minZoom: 0, maxZoom: maxZoom + 2, zoomSnap: 1,
    attributionControl: false, maxBounds: world.pad(0.2),
  });
  L.tileLayer("/map/tiles/{z}/{x}/{y}.webp", {
    tileSize: 256, minZoom: 0, maxZoom: maxZoom + 2, maxNativeZoom: maxZoom,
    bounds: world, noWrap: true, keepBuffer: 1,
  }).addTo(map);
  map.fitBounds(world);
  window.ogaMap = map;  // for the browser tests

  const labels = L.layerGroup().addTo(map);
  function showLabels() {
    const zoom = map.getZoom();
    fetch("/api/map/labels?z=" + Math.min(zoom, maxZoom)).then(r => r.json()).then(data => {
      if (map.getZoom() !== zoom) return;
      labels.clearLayers();
      for (const label of data.labels) {
        const span = document.createElement("span");
        span.textContent = label.text;
        const icon = L.divIcon({ className: "map-label", html: span, iconSize: null });
        L.marker([-label.y, label.x], { icon: icon, interactive: false, keyboard: false })
          .addTo(labels);
      }
    });
  }
  map.on("zoomend", showLabels);
  showLabels();

  const card = document.getElementById("map-card");
  function add(parent, tag, text, cls) {
    const node = document.createElement(tag);
    if (text) node.textContent = text;
    if (cls) node.className = cls;
    parent.appendChild(node);
    return node;
  }
  function showCard(image) {
    card.replaceChildren();
    const close = add(card, "button", "×", "close");
    close.type = "button";
    close.addEventListener("click", () => { card.hidden = true; });
    const img = add(card, "img");
    img.src = image.image_url;
    img.alt = image.title || image.file_name;
    const title = add(card, "h3");
    const link = add(title, "a", image.title || image.page_file_name);
    link.href = image.page_url;
    link.rel = "noopener noreferrer";
    add(card, "p", "by " + (image.author || "unknown"), "author");
    add(card, "p", (image.licenses || []).join(" / ") || "licence unknown", "licences");
    const more = add(card, "a", "More like this", "similar");
    more.href = "/?similar=" + image.image_id;
    card.dataset.imageId = String(image.image_id);
    card.hidden = false;
  }
  map.on("click", e => {
    const q = "x=" + e.latlng.lng + "&y=" + -e.latlng.lat + "&z=" + map.getZoom();
    fetch("/api/map/at?" + q).then(r => (r.ok ? r.json() : null)).then(point => {
      if (!point) return;
      return fetch("/api/images/" + point.image_id).then(r => r.json()).then(showCard);
    });
  });

  const wanted = el.dataset.highlight;
  if (wanted) {
    fetch("/api/map/points?ids=" + encodeURIComponent(wanted)).then(r => r.json()).then(data => {
      const marks = data.points.map(p => L.circleMarker([-p.y, p.x], {
        radius: 12, color: "#f0b43c", weight: 3, fill: false, className: "map-highlight",
      }));
      if (!marks.length) return;
      const group = L.featureGroup(marks).addTo(map);
      map.fitBounds(group.getBounds().pad(0.5), { maxZoom: maxZoom });
    });
  }
})();
