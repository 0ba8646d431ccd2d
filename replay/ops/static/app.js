// bufferzone operations picture: draws /layers.json once, then each picture pushed on
// /events (server-sent events). No network beyond this server: no tiles unless
// configured, a graticule instead.
"use strict";

const CLASS_COLOURS = { person: "#7b3fbf", vehicle: "#1f5fbf", drone: "#bf1f8c", unknown: "#444" };
const SEVERITY_COLOURS = { critical: "#d00", high: "#d00", medium: "#f80", low: "#db0", info: "#888" };
const VELOCITY_LEAD_S = 30; // the velocity line shows where the track is in 30 s

const map = L.map("map", { zoomSnap: 0.25, fadeAnimation: false });
const layers = {
  graticule: L.layerGroup().addTo(map),
  zones: L.layerGroup().addTo(map),
  coverage: L.layerGroup().addTo(map),
  sensors: L.layerGroup().addTo(map),
  tails: L.layerGroup().addTo(map),
  tracks: L.layerGroup().addTo(map),
  alerts: L.layerGroup().addTo(map),
};
// For tests and for the curious: the newest state, the layers.
window.bz = { layers, picture: null, pictures: 0, alertSeenAt: {} };
const sensorMarkers = {}; // sensor id -> its marker, to grey out the silent ones

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// A graticule: lines of longitude/latitude at a round step for the view.
function drawGraticule() {
  layers.graticule.clearLayers();
  const b = map.getBounds();
  const span = Math.max(b.getEast() - b.getWest(), b.getNorth() - b.getSouth());
  const steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];
  const step = steps.find((s) => span / s <= 12) || 10;
  const style = { color: "#b8b8b0", weight: 1, interactive: false };
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  for (let lon = Math.floor(b.getWest() / step) * step; lon <= b.getEast(); lon += step) {
    layers.graticule.addLayer(L.polyline([[b.getSouth(), lon], [b.getNorth(), lon]], style));
    layers.graticule.addLayer(L.marker([b.getSouth(), lon], { interactive: false,
      icon: L.divIcon({ className: "graticule-label", html: lon.toFixed(digits) + "°E", iconAnchor: [-2, 14] }) }));
  }
  for (let lat = Math.floor(b.getSouth() / step) * step; lat <= b.getNorth(); lat += step) {
    layers.graticule.addLayer(L.polyline([[lat, b.getWest()], [lat, b.getEast()]], style));
    layers.graticule.addLayer(L.marker([lat, b.getWest()], { interactive: false,
      icon: L.divIcon({ className: "graticule-label", html: lat.toFixed(digits) + "°N", iconAnchor: [-2, 12] }) }));
  }
}

const latlngs = (ring) => ring.map(([lon, lat]) => [lat, lon]);

function drawLayers(info) {
  document.getElementById("title").textContent = "bufferzone — " + (info.name || "zone");
  if (info.tiles) {
    L.tileLayer(info.tiles, { maxZoom: 19, attribution: "tiles: configured server" }).addTo(map);
  }
  const zones = L.geoJSON(info.zones, {
    style: { color: "#c00", weight: 2, fillColor: "#f33", fillOpacity: 0.12 },
    onEachFeature: (f, layer) => layer.bindTooltip("zone " + esc(f.properties.name || ""), { sticky: true }),
  });
  layers.zones.addLayer(zones);
  for (const s of info.sensors || []) {
    const colour = { radar: "#0a7", ugs: "#a70", satellite: "#07a", drone: "#70a" }[s.kind] || "#555";
    if (s.coverage) {
      layers.coverage.addLayer(L.polygon(latlngs(s.coverage), { color: colour, weight: 1, dashArray: "4 4", fillOpacity: 0.04 })
        .bindTooltip(esc(s.id) + " coverage", { sticky: true }));
    }
    if (s.route) {
      layers.coverage.addLayer(L.polyline(latlngs(s.route.concat([s.route[0]])), { color: colour, weight: 1, dashArray: "2 6" }));
    }
    if (s.position) {
      const marker = L.circleMarker([s.position[1], s.position[0]], { radius: 5, color: "#fff", weight: 1, fillColor: colour, fillOpacity: 1 })
        .bindTooltip(esc(s.kind) + " " + esc(s.id));
      marker.colour = colour;
      sensorMarkers[s.id] = marker;
      layers.sensors.addLayer(marker);
    }
  }
  const bounds = zones.getBounds();
  layers.coverage.eachLayer((l) => bounds.extend(l.getBounds()));
  if (bounds.isValid()) map.fitBounds(bounds.pad(0.05)); else map.setView([info.origin[1], info.origin[0]], 12);
  drawGraticule();
  map.on("moveend", drawGraticule);
}

function drawTracks(tracks) {
  layers.tracks.clearLayers();
  layers.tails.clearLayers();
  for (const t of tracks) {
    const colour = t.degraded ? "#999" : (CLASS_COLOURS[t.cls] || CLASS_COLOURS.unknown);
    if (t.tail && t.tail.length > 1) {
      layers.tails.addLayer(L.polyline(latlngs(t.tail), { color: colour, weight: 2, opacity: 0.5, interactive: false }));
    }
    // velocity leader: a degree of latitude is ~111 km; of longitude, times cos(lat)
    const dLat = (t.v_north * VELOCITY_LEAD_S) / 111320;
    const dLon = (t.v_east * VELOCITY_LEAD_S) / (111320 * Math.cos((t.lat * Math.PI) / 180));
    layers.tracks.addLayer(L.polyline([[t.lat, t.lon], [t.lat + dLat, t.lon + dLon]], { color: colour, weight: 2, interactive: false }));
    layers.tracks.addLayer(L.circleMarker([t.lat, t.lon], { radius: 5, color: colour, weight: 2, fillColor: "#fff", fillOpacity: 1, dashArray: t.degraded ? "2 2" : null })
      .bindTooltip(`track ${t.id} · ${esc(t.cls)} (${t.conf.toFixed(2)}) · ${t.speed.toFixed(1)} m/s · ${t.heading.toFixed(0)}°` +
        (t.degraded ? " · DEGRADED (sensor silent)" : "")));
  }
}

function alertItem(a, closed) {
  const li = document.createElement("li");
  li.className = "alert sev-" + (a.severity || "info") + (closed ? " closed" : "");
  li.dataset.alertId = a.alert_id;
  const where = a.position && a.position.lat != null ? `${a.position.lat.toFixed(5)}, ${a.position.lon.toFixed(5)}` : "";
  li.innerHTML = `<div class="what">${esc(a.kind)} · ${esc(a.zone)}${a.track_id != null ? " · track " + esc(a.track_id) : ""}${a.sensor ? " · " + esc(a.sensor) : ""}</div>` +
    `<div>${esc(a.severity)} · ${esc(a.event)} · ${esc(a.time_utc || "")}</div>` +
    `<div class="ev">evidence: ${esc((a.evidence || []).join(", ") || "—")}${where ? " · " + where : ""}</div>`;
  li.addEventListener("click", () => zoomTo(a));
  return li;
}

function zoomTo(a) {
  if (!a.position || a.position.lat == null) return;
  window.bz.zoomedTo = null;
  // said once the flight has landed, so a reader (or a test) sees the final view
  map.once("moveend", () => {
    L.popup().setLatLng([a.position.lat, a.position.lon])
      .setContent(`<b>${esc(a.kind)}</b> in ${esc(a.zone)}<br>${esc(a.severity)} · alert ${esc(a.alert_id)}<br>evidence: ${esc((a.evidence || []).join(", "))}`)
      .openOn(map);
    window.bz.zoomedTo = a.alert_id;
  });
  map.flyTo([a.position.lat, a.position.lon], Math.max(map.getZoom(), 14), { duration: 0.5 });
}

function drawAlerts(alerts, closed) {
  const list = document.getElementById("alerts");
  list.replaceChildren(...alerts.map((a) => alertItem(a, false)));
  document.getElementById("closed").replaceChildren(...closed.slice(0, 15).map((a) => alertItem(a, true)));
  layers.alerts.clearLayers();
  const now = performance.now();
  for (const a of alerts) {
    if (!(a.alert_id in window.bz.alertSeenAt)) window.bz.alertSeenAt[a.alert_id] = now;
    if (!a.position || a.position.lat == null) continue;
    layers.alerts.addLayer(L.circleMarker([a.position.lat, a.position.lon], { radius: 11, color: SEVERITY_COLOURS[a.severity] || "#888", weight: 3, fill: false })
      .on("click", () => zoomTo(a)));
  }
}

function drawService(service, picture) {
  const banner = document.getElementById("banner");
  banner.className = "banner " + service.state;
  banner.dataset.state = service.state;
  const heard = service.last_heard_s == null ? "ever" : service.last_heard_s.toFixed(0) + " s";
  banner.textContent = {
    live: "service live",
    waiting: "connecting to the service…",
    silent: `SERVICE SILENT — nothing heard for ${heard}: the picture below is stale`,
    stopped: "service stopped (it said so); the picture below is its last",
  }[service.state] || service.state;
  const silent = (picture.status && picture.status.sensors_silent) || [];
  for (const [id, marker] of Object.entries(sensorMarkers)) {
    const quiet = silent.includes(id);
    marker.setStyle(quiet ? { fillColor: "#fff", color: "#d00", weight: 2 } : { fillColor: marker.colour, color: "#fff", weight: 1 });
  }
  if (silent.length && service.state === "live") banner.textContent += ` · SENSORS SILENT: ${silent.join(", ")}`;
  document.getElementById("clock").textContent = picture.time_utc ? picture.time_utc.replace("T", " ").replace("Z", " UTC") : "—";
  document.getElementById("track-count").textContent = picture.tracks.length;
  document.getElementById("alert-count").textContent = picture.alerts.length;
}

function onPicture(p) {
  window.bz.picture = p;
  window.bz.pictures += 1;
  drawTracks(p.tracks);
  drawAlerts(p.alerts, p.closed);
  drawService(p.service, p);
}

fetch("layers.json").then((r) => r.json()).then((info) => {
  drawLayers(info);
  window.bz.layersReady = true;
  const events = new EventSource("events");
  events.addEventListener("picture", (e) => onPicture(JSON.parse(e.data)));
  events.onerror = () => {
    const banner = document.getElementById("banner");
    banner.className = "banner silent";
    banner.dataset.state = "unreachable";
    banner.textContent = "MAP SERVER UNREACHABLE — retrying";
  };
});
