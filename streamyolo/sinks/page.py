"""The web page itself (:mod:`streamyolo.sinks.web` serves it at ``/``): one HTML file with its
style and script, no other file and nothing from the network. Its script asks the server for
``status.json`` every second and draws a tile per stream; its panels (recordings, clips,
events, heatmaps) ask for their listings as they open. The events panel searches the events
(``events.json?…``) and counts a search's events in each hour or day of its span
(``counts.json?…``), a small bar chart per thing counted. The recordings and clips panels
say, from the status's ``"storage"``, what their files take, since when, how much the last
day wrote, and about how many days the disk's free room lasts at that rate.

Written in a plain Python string: ``\\n`` in it is the script's ``\\n``.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamyolo</title>
<style>
  [hidden] { display: none !important; }  /* also where a rule below sets display */
  body { margin: 0; font: 14px system-ui, sans-serif; background: #111; color: #eee; }
  header { padding: 8px 12px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  #run { color: #9c9; }
  #run.ended { color: #c99; }
  #paused { color: #f88; margin: 0 12px 8px; } #paused div { margin: 2px 0; }
  #overload { color: #fc6; margin: 0 12px 8px; }
  main { display: grid; gap: 8px; padding: 8px; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); }
  figure { margin: 0; background: #000; border: 1px solid #333; }
  figure img { display: block; width: 100%; min-height: 120px; object-fit: contain; background: #222; }
  figcaption { padding: 4px 8px; display: flex; flex-wrap: wrap; gap: 4px 12px; }
  .name { font-weight: bold; }
  .state-streaming { color: #9c9; } .state-failed { color: #f77; }
  .state-connecting, .state-reconnecting { color: #fc6; }
  .error { color: #f77; width: 100%; }
  .detections { color: #bcd; } .counts, .zones { color: #fd8; }
  figcaption button.switch { font: inherit; color: #9c9; background: #222; border: 1px solid #555; cursor: pointer; }
  figcaption button.switch.off { color: #f96; border-color: #f96; }
  .watches { display: flex; gap: 4px; flex-wrap: wrap; } .watches:empty { display: none; }
  figure { cursor: zoom-in; }
  main.solo { grid-template-columns: 1fr; }
  main.solo figure { display: none; }
  main.solo figure.solo { display: block; cursor: zoom-out; }
  header button { font: inherit; color: #eee; background: #333; border: 1px solid #555; cursor: pointer; }
  .videos { padding: 0 12px 8px; }
  .videos video { display: block; max-width: 100%; max-height: 60vh; background: #000; margin-bottom: 8px; }
  .files { list-style: none; margin: 0; padding: 0; columns: 2 360px; }
  .files li { padding: 2px 0; } .files a { color: #9cf; } .files .playing { font-weight: bold; }
  .files .about { color: #999; margin-left: 8px; }
  .files li.objects a { color: #fd8; } .files.objects-only li:not(.objects) { display: none; }
  .videos .more { color: #999; margin: 4px 0; }
  #events { padding: 0 12px 8px; }
  #shot, #clip { display: block; max-width: 100%; max-height: 60vh; margin-bottom: 8px; background: #000; }
  #happened { list-style: none; margin: 0; padding: 0; max-height: 40vh; overflow: auto; }
  #happened .about { color: #999; } #happened a { color: #9cf; }
  #happened .event-state { color: #fc6; }
  #events select, #event-search input, #event-search button { font: inherit; color: #eee; background: #222;
              border: 1px solid #555; }
  #event-search { margin: 4px 0; color: #999; } #event-found { color: #999; margin: 4px 0; }
  #event-found.failed { color: #f88; } #event-found:empty { display: none; }
  #event-counts { margin: 4px 0 8px; max-height: 60vh; overflow: auto; } #event-counts .counted { color: #999; }
  #event-counts .series { display: flex; align-items: center; gap: 12px; margin: 6px 0; }
  #event-counts .what { min-width: 16em; } #event-counts .total { min-width: 3em; text-align: right; color: #fd8; }
  #event-counts svg { display: block; } #event-counts .slot { fill: #222; } #event-counts .count { fill: #fd8; }
  #event-counts .ends { display: flex; justify-content: space-between; gap: 8px; color: #999; font-size: 12px; }
  #event-older { font: inherit; color: #eee; background: #222; border: 1px solid #555; margin-top: 4px; }
  .picture { position: relative; }
  .picture svg { position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; }
  .picture polygon { fill: rgba(255, 215, 0, 0.2); stroke: #fd0; stroke-width: 2; vector-effect: non-scaling-stroke; }
  .picture circle { fill: #fd0; }
  body.drawing figure, body.drawing main.solo figure.solo { cursor: crosshair; }
  .points, .region { color: #fd0; font-family: monospace; width: 100%; user-select: all; }
  #draw-help { color: #999; }
  #export { margin: 4px 0; color: #999; }
  #export input, #export select { font: inherit; color: #eee; background: #222; border: 1px solid #555; }
  #export-result a { color: #9cf; } #export-result.failed { color: #f88; }
  #timeline { position: relative; height: 22px; background: #222; border: 1px solid #555; cursor: pointer;
              margin: 4px 0; }
  #timeline .span { position: absolute; top: 3px; bottom: 3px; min-width: 2px; background: #468; }
  #timeline .tick { position: absolute; top: 0; height: 6px; width: 2px; background: #f80; }
  #timeline .span.objects { background: #fd8; } #timeline .cursor { position: absolute; top: 0; bottom: 0;
              width: 2px; background: #f44; }
  #timeline-times { display: flex; justify-content: space-between; color: #999; font-size: 12px; }
  #timeline-days { color: #999; margin: 4px 0; }
  #timeline-days input, #timeline-days button { font: inherit; color: #eee; background: #222; border: 1px solid #555; }
  .storage { color: #999; margin: 4px 0; }
</style>
</head>
<body>
<header><h1>streamyolo</h1><span id="run">connecting…</span>
<button id="show-recordings" hidden>recordings</button>
<button id="show-clips" hidden>clips</button>
<button id="show-events" hidden>events</button>
<button id="show-heatmaps" hidden title="where each stream's objects have been, over the run">heatmaps</button>
<button id="draw" title="click points on a picture: its zone, line or mask in the stream's pixels">points</button>
<button id="clear-points" hidden>clear points</button>
<span id="draw-help" hidden>click on a picture; copy the points under it into the config</span></header>
<div id="paused" hidden title="outputs that cannot write now (a full disk?): each tries again every few seconds"></div>
<div id="overload" hidden title="each result is of the newest frame; the cameras' sub streams, motion, a smaller \
imgsz or model, or a GPU would help: see the log"></div>
<section id="events" hidden><img id="shot" alt="snapshot" hidden>
<video id="clip" controls muted playsinline hidden></video>
<form id="event-search" title="the events file's events (every run's) that match, newest first">events of
<select id="event-stream"><option value="">every stream</option></select>
<select id="event-kind"><option value="">of every kind</option><option value="line">line</option>
<option value="enter">enter</option><option value="leave">leave</option><option value="linger">linger</option>
<option value="speeding">speeding</option><option value="crowd">crowd</option><option value="state">state</option>
<option value="clip">clip</option>
<option value="output">output</option><option value="switch">switch</option>
<option value="overload">overload</option>
</select> class <input id="event-class" size="10" placeholder="any (person, 0…)">
in <input id="event-where" size="10" placeholder="any zone or line">
from <input type="datetime-local" id="event-from" step="1"> to <input type="datetime-local" id="event-to" step="1">
<button id="event-find">search</button>
<button type="button" id="event-count"
title="how many of these events came in each hour (a span of over 2 days: each day); from today, to now">count</button>
<button type="button" id="event-newest" hidden title="the newest events, as they come">newest</button>
<a id="event-export" hidden download title="the search's events as a file, for a spreadsheet">CSV</a></form>
<div id="event-found"></div>
<div id="event-counts" hidden></div>
<ol id="happened"></ol>
<button type="button" id="event-older" hidden title="the search's next events: older than those shown">older</button>
</section>
<section id="recordings" class="videos" hidden>
<p id="recordings-storage" class="storage" hidden></p>
<form id="export" title="the stream's recordings then, cut into one MP4 (up to an hour)">export
<select id="export-stream"></select> from <input type="datetime-local" id="export-from" step="1" required>
to <input type="datetime-local" id="export-to" step="1" required> <button>export</button>
<span id="export-result"></span></form>
<div id="timeline-days" hidden>day
<button type="button" id="timeline-earlier" title="the day before">◀</button><input type="date" id="timeline-day"
title="a day (empty: the last 24 hours)"><button type="button" id="timeline-later"
title="the day after (after today: the last 24 hours)">▶</button></div>
<div id="timeline" hidden title="a click plays that moment"></div>
<div id="timeline-times" hidden><span id="timeline-begin"></span><span id="timeline-at"></span>
<span id="timeline-end"></span></div>
<label id="objects-only-label" hidden><input type="checkbox" id="objects-only"> only the segments with objects</label>
<video id="player" controls muted playsinline hidden></video><ul id="files" class="files"></ul>
<p id="files-more" class="more" hidden>older recordings: pick their day on the timeline</p>
</section>
<section id="clips" class="videos" hidden>
<p id="clips-storage" class="storage" hidden></p>
<video id="clip-player" controls muted playsinline hidden></video><ul id="clip-files" class="files"></ul>
<p id="clip-files-more" class="more" hidden>older clips: not listed (an event's "clip" link plays its clip)</p>
</section>
<main id="tiles"></main>
<script>
"use strict";
const tiles = new Map();
const SVG = "http://www.w3.org/2000/svg";
// Addresses without the login a user may have put in the page's URL (https://user:pass@host/):
// browsers refuse fetches and pictures whose URL holds one, and send the login they keep anyway.
const here = location.origin + location.pathname.replace(/[^/]*$/, "");
function tile(name) {
  if (tiles.has(name)) return tiles.get(name);
  const figure = document.createElement("figure");
  figure.dataset.stream = name;
  const img = document.createElement("img");
  img.alt = name;
  img.src = here + "streams/" + encodeURIComponent(name) + ".mjpg";
  const caption = document.createElement("figcaption");
  const fields = {};
  for (const key of ["name", "state", "fps", "age", "dropped", "reconnects", "detections", "counts", "zones",
                     "watches", "error", "points", "region"]) {
    fields[key] = document.createElement("span");
    fields[key].className = key;
    caption.appendChild(fields[key]);
  }
  const picture = document.createElement("div");
  picture.className = "picture";
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");  // as the picture's object-fit: contain
  picture.append(img, svg);
  // The stream's switches (shown when the page has them): a click turns one off or on.
  const switches = {};
  for (const kind of Object.keys(SWITCHES)) {
    const button = switches[kind] = switchButton(kind, "streams/" + encodeURIComponent(name) + "/" + kind,
                                                 fields.error, (on) => showSwitch(button, kind, on));
    button.hidden = true;
    caption.insertBefore(button, fields.detections);
  }
  figure.append(picture, caption);
  const entry = {name, figure, img, fields, svg, switches, watches: new Map(), size: null, points: []};
  figure.addEventListener("click", (click) => {
    if (document.body.classList.contains("drawing")) {
      addPoint(entry, click);
      return;
    }
    const tilesEl = document.getElementById("tiles");
    const solo = !figure.classList.contains("solo");
    for (const other of tilesEl.children) other.classList.toggle("solo", solo && other === figure);
    tilesEl.classList.toggle("solo", solo);
  });
  document.getElementById("tiles").appendChild(figure);
  tiles.set(name, entry);
  return entry;
}
// Points clicked on a picture, in the stream's own pixels (what zones, lines and masks are
// written in, whatever size the page shows it at), drawn over it and listed under it.
function addPoint(entry, click) {
  if (!entry.size || !entry.img.naturalWidth) return;
  const [width, height] = entry.size;
  const box = entry.img.getBoundingClientRect();
  const scale = Math.min(box.width / width, box.height / height);
  const x = (click.clientX - box.left - (box.width - width * scale) / 2) / scale;
  const y = (click.clientY - box.top - (box.height - height * scale) / 2) / scale;
  if (x < -0.5 || y < -0.5 || x > width + 0.5 || y > height + 0.5) return;  // beside the picture
  entry.points.push([Math.min(width, Math.max(0, Math.round(x))), Math.min(height, Math.max(0, Math.round(y)))]);
  drawPoints(entry);
}
function drawPoints(entry) {
  entry.svg.replaceChildren();
  entry.fields.points.textContent = entry.points.length ? JSON.stringify(entry.points).replaceAll(",", ", ") : "";
  const xs = entry.points.map((p) => p[0]), ys = entry.points.map((p) => p[1]);  // the rectangle they span
  entry.fields.region.textContent = entry.points.length < 2 ? "" : "region: [" + [
    Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)].join(", ") + "]";
  if (!entry.size) return;
  entry.svg.setAttribute("viewBox", "0 0 " + entry.size[0] + " " + entry.size[1]);
  const line = document.createElementNS(SVG, "polygon");  // a zone or mask closes; a line is two points
  line.setAttribute("points", entry.points.map((p) => p.join(",")).join(" "));
  entry.svg.appendChild(line);
  for (const [x, y] of entry.points) {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x);
    dot.setAttribute("cy", y);
    dot.setAttribute("r", Math.max(2, entry.size[0] / 200));
    entry.svg.appendChild(dot);
  }
}
document.getElementById("draw").addEventListener("click", () => {
  const drawing = document.body.classList.toggle("drawing");
  document.getElementById("draw").textContent = drawing ? "done" : "points";
  document.getElementById("clear-points").hidden = !drawing;
  document.getElementById("draw-help").hidden = !drawing;
});
document.getElementById("clear-points").addEventListener("click", () => {
  for (const entry of tiles.values()) {
    entry.points = [];
    drawPoints(entry);
  }
});
// Heatmaps on: each tile shows its stream's heatmap (refreshed every 2 s) instead of its video.
let heatmaps = false;
function showPictures() {
  for (const [name, entry] of tiles) {
    const kind = heatmaps ? "heatmaps/" + encodeURIComponent(name) + ".jpg?t=" + Date.now()
                          : "streams/" + encodeURIComponent(name) + ".mjpg";
    if (heatmaps || !entry.img.src.endsWith(".mjpg")) entry.img.src = here + kind;
  }
}
document.getElementById("show-heatmaps").addEventListener("click", () => {
  heatmaps = !heatmaps;
  document.getElementById("show-heatmaps").textContent = heatmaps ? "videos" : "heatmaps";
  showPictures();
});
setInterval(() => { if (heatmaps) showPictures(); }, 2000);
// Each switch: its words on and off, and what a click does then.
const SWITCHES = {
  detect: ["detection on", "detection off", "click: the model stops looking at this stream (it goes on being shown "
           + "and recorded)", "click: the model looks at this stream again"],
  record: ["recording on", "recording off", "click: this stream's recording ends here (the model goes on looking)",
           "click: this stream is recorded again, in a new file"],
};
// A switch with a schedule (button.plan: the status's "schedule" of its kind) also says when the
// schedule switches it next, or that it was switched by hand until then.
function showSwitch(button, kind, on) {
  const [yes, no, stop, start] = SWITCHES[kind], plan = button.plan;
  button.classList.toggle("off", !on);
  button.textContent = (on ? yes : no) + (!plan ? "" : plan.on === on ? " · " + (on ? "off" : "on") + " at "
                                          + hourOf(plan.until) : " · by hand until " + hourOf(plan.until));
  button.title = (on ? stop : start) + (plan ? "\\nschedule: " + plan.windows.join(", ")
                                        + " (a click holds until its next change)" : "");
}
let recorded = new Set();  // the streams being recorded (status.json's "record" not null)
function show(status) {
  document.getElementById("show-heatmaps").hidden = !status.heatmaps;
  const run = document.getElementById("run");
  run.textContent = status.running ? "running" : "ended";
  run.className = status.running ? "" : "ended";
  const names = new Set(status.streams.map((s) => s.name));
  recorded = new Set(status.streams.filter((s) => s.record !== null && s.record !== undefined).map((s) => s.name));
  eventStreams([...names]);
  showStorage(status.storage);
  showPaused(status.paused || []);
  showOverload(status.overload);
  for (const [name, entry] of tiles) {  // a stream removed as the run went (a reload)
    if (!names.has(name)) {
      entry.figure.remove();
      tiles.delete(name);
    }
  }
  for (const s of status.streams) {
    const entry = tile(s.name);
    const f = entry.fields;
    if (s.size && (!entry.size || entry.size.join() !== s.size.join())) {
      entry.size = s.size;
      drawPoints(entry);
    }
    f.name.textContent = s.name;
    f.state.textContent = s.state;
    f.state.className = "state state-" + s.state;
    f.fps.textContent = s.fps_in.toFixed(1) + " fps in, " + s.fps_out.toFixed(1) + " out";
    f.age.textContent = (s.frame_age === null ? "" : "age " + Math.round(s.frame_age * 1000) + " ms")
      + (s.lagging ? (s.frame_age === null ? "" : ", ") + s.behind.toFixed(1) + " s behind" : "");
    f.dropped.textContent = s.dropped + " dropped of " + s.captured;
    f.reconnects.textContent = s.reconnects ? s.reconnects + (s.reconnects === 1 ? " reconnect" : " reconnects") : "";
    f.detections.textContent = Object.entries(s.detections).map(([k, v]) => v + " " + k).join(", ")
      + (s.standing ? " (" + s.standing + " stationary)" : "");
    const total = (byClass) => Object.values(byClass || {}).reduce((a, b) => a + b, 0);
    f.counts.textContent = Object.entries(s.counts || {})
      .map(([line, ways]) => line + ": " + total(ways.in) + " in, " + total(ways.out) + " out").join("; ");
    const held = (inside) => Object.entries(inside).map(([k, v]) => v + " " + k).join(", ") || "empty";
    const stayed = (zone) => {  // how long those that left stayed, on average
      const by = Object.values((s.zone_stays || {})[zone] || {});
      const left = by.reduce((n, c) => n + c.left, 0);
      return left ? ", " + left + " left after " + (by.reduce((t, c) => t + c.left * c.mean, 0) / left).toFixed(1)
        + " s on average" : "";
    };
    const entered = (zone) => zone in (s.zone_entries || {})
      ? " (" + total(s.zone_entries[zone]) + " entered" + stayed(zone) + ")" : "";
    const marks = (zone) => {  // its objects standing still, its schedule's and its crowd's
      const now = (s.zone_states || {})[zone] || {};
      const still = total((s.stationary || {})[zone]);
      return (still ? " · " + still + " stationary" : "") + (now.watched === false ? " · not watched" : "")
        + (now.crowded ? " · crowded" : "");
    };
    f.zones.textContent = Object.entries(s.zones || {})
      .map(([zone, inside]) => zone + ": " + held(inside) + entered(zone) + marks(zone)).join("; ");
    showWatches(entry, s, status.controls);
    f.error.textContent = s.error || "";
    for (const [kind, button] of Object.entries(entry.switches)) {
      const state = s[kind];  // the stream's: null for the recording of a stream not recorded
      // Without switches, only what is off is said.
      button.hidden = state === null || state === undefined || (!status.controls && state !== false);
      button.plan = (s.schedule || {})[kind];
      if (!button.dataset.busy) {  // else a click's answer is on its way
        button.disabled = !status.controls;
        showSwitch(button, kind, state !== false);
      }
    }
  }
}
// A switch's button: a click asks `path` (POST) for the other state and, taken, shows it (`shown(on)`).
function switchButton(kind, path, error, shown) {
  const button = document.createElement("button");
  button.className = "switch " + kind;
  button.addEventListener("click", async (click) => {
    click.stopPropagation();  // not a click on the picture
    const on = button.classList.contains("off");
    button.dataset.busy = "yes";
    button.disabled = true;
    try {
      const response = await fetch(here + path, {
        method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({on})});
      if (response.ok) shown(on);
      else error.textContent = await response.text();
    } finally {
      delete button.dataset.busy;
      button.disabled = false;
    }
  });
  return button;
}
// With the page's switches, a button per zone: a click watches it or not (its events, its
// occupancy), against its schedule until the schedule's next change.
function showWatches(entry, s, controls) {
  const zones = controls ? Object.keys(s.zones || {}) : [];
  for (const [zone, button] of entry.watches) {
    if (!zones.includes(zone)) {
      button.remove();
      entry.watches.delete(zone);
    }
  }
  for (const zone of zones) {
    let button = entry.watches.get(zone);
    if (!button) {
      const path = "streams/" + encodeURIComponent(entry.name) + "/zones/" + encodeURIComponent(zone) + "/watch";
      const made = button = switchButton("watch", path, entry.fields.error, (on) => showWatch(made, zone, on));
      button.dataset.zone = zone;
      entry.watches.set(zone, button);
      entry.fields.watches.appendChild(button);
    }
    button.plan = (s.schedule || {})["watch:" + zone];
    if (!button.dataset.busy) showWatch(button, zone, ((s.zone_states || {})[zone] || {}).watched !== false);
  }
}
// A zone with a schedule (button.plan) also says when the schedule switches it next, or that it
// was switched by hand until then.
function showWatch(button, zone, on) {
  const plan = button.plan;
  button.classList.toggle("off", !on);
  const next = !plan ? "" : plan.on === on ? " · " + (on ? "not watched" : "watched") + " from " + hourOf(plan.until)
    : " · by hand until " + hourOf(plan.until);
  button.textContent = zone + (on ? " watched" : " not watched") + next;
  button.title = (on ? "click: this zone sees no one (no events; Home Assistant's occupied stays off)"
                  : "click: this zone is watched again")
    + (plan ? "\\nschedule: " + plan.windows.join(", ") + " (a click holds until its next change)" : "");
}
function describe(e) {
  const who = e.name + (e.id === undefined || e.id === null ? "" : " #" + e.id);
  if (e.event === "line") return who + " crossed " + e.line + " (" + e.direction + ")";
  if (e.event === "enter") return who + " entered " + e.zone;
  if (e.event === "leave") return who + " left " + e.zone + " after " + e.dwell.toFixed(1) + " s";
  if (e.event === "linger") return who + " lingers in " + e.zone + " (" + e.dwell.toFixed(1) + " s)";
  if (e.event === "speeding") return who + " speeding in " + e.zone + " (" + e.speed.toFixed(0) + " km/h)";
  if (e.event === "crowd" && e.state === "started") {
    const inside = Object.entries(e.inside || {}).map(([name, n]) => n + " " + name).join(", ");
    return e.zone + " crowded: " + (inside || e.count + " objects") + " (" + e.limit + " or more)";
  }
  if (e.event === "crowd") return e.zone + " no longer crowded after " + e.seconds.toFixed(1) + " s";
  if (e.event === "clip" && e.state === "ended") return "clip finished (" + e.seconds.toFixed(1) + " s)";
  if (e.event === "clip" && e.state === "failed") return "clip not made: " + e.error;
  if (e.event === "clip") return "something happened: a clip starts";
  if (e.event === "switch" && e.switch === "watch") {
    return "zone " + e.zone + (e.state === "on" ? " watched" : " not watched") + " (" + e.by + ")";
  }
  if (e.event === "switch") return (e.switch === "record" ? "recording" : "detection") + " switched " + e.state
    + " (" + e.by + ")";
  if (e.event === "output" && e.state === "paused") return e.output + " paused: " + e.error;
  if (e.event === "output") return e.output + " writing again after " + e.seconds.toFixed(0) + " s (" + e.lost + " "
    + e.unit + " lost)";
  if (e.event === "overload" && e.state === "started") return overloadText(e);
  if (e.event === "overload") return e.stopped ? "the run ended after " + e.seconds.toFixed(0)
    + " s of not keeping up" : "the machine keeps up again after " + e.seconds.toFixed(0) + " s";
  return e.state + (e.error ? ": " + e.error : "");
}
// The events panel shows one thing at a time above its list: a snapshot or a clip.
function showAside(id, address) {
  const shown = document.getElementById(id);
  for (const other of ["shot", "clip"]) {
    if (other === id) continue;
    const element = document.getElementById(other);
    element.hidden = true;
    if (element.pause) element.pause();
  }
  if (shown.src !== address) shown.src = address;
  shown.hidden = false;
  return shown;
}
// The events of one stream only (the select above the list), or of every stream.
function filterEvents() {
  const stream = document.getElementById("event-stream").value;
  for (const item of document.getElementById("happened").children) {
    item.hidden = Boolean(stream) && item.dataset.stream !== stream;
  }
}
document.getElementById("event-stream").addEventListener("change", filterEvents);
function eventStreams(names) {  // the select's streams: the run's now (and the one chosen)
  const select = document.getElementById("event-stream");
  const wanted = ["", ...names];
  if (select.value && !wanted.includes(select.value)) wanted.push(select.value);
  const have = [...select.options].map((option) => option.value);
  if (have.join() === wanted.join()) return;  // (a stream name has no comma)
  const chosen = select.value;
  select.replaceChildren(...wanted.map((name) => new Option(name || "every stream", name)));
  select.value = chosen;
}
// An event as the list shows it: when (with its day, if not today), the stream and what
// happened, a link to its snapshot, its clip, and its stream's recording then.
function eventItem(e) {
  const item = document.createElement("li");
  item.className = "event-" + e.event;
  item.dataset.stream = e.stream;
  const when = document.createElement("span");
  when.className = "about";
  const moment = new Date(e.time * 1000);
  when.textContent = moment.toDateString() === new Date().toDateString() ? moment.toLocaleTimeString()
                                                                         : moment.toLocaleString();
  const what = document.createElement(e.snapshot ? "a" : "span");
  what.textContent = (e.stream ? e.stream + ": " : "") + describe(e);  // (an output of the run's: no stream)
  if (e.snapshot) {
    what.href = here + "snapshots/" + encodeURIComponent(e.snapshot);
    what.addEventListener("click", (click) => {
      click.preventDefault();
      showAside("shot", what.href);
    });
  }
  item.append(when, " ", what);
  if (e.clip && e.state !== "failed") {
    const clip = document.createElement("a");
    clip.className = "clip";
    clip.textContent = "clip";
    clip.href = here + "clips/" + encodeURIComponent(e.clip);
    clip.addEventListener("click", (click) => {
      click.preventDefault();
      showAside("clip", clip.href).play().catch(() => {});
    });
    item.append(" ", clip);
  }
  if (recorded.has(e.stream) && !document.getElementById("show-recordings").hidden) {  // its recording then
    const seen = document.createElement("a");
    seen.className = "recorded";
    seen.textContent = "recording";
    seen.href = "#recordings";
    seen.addEventListener("click", (click) => {
      click.preventDefault();
      recordingAt(e.stream, e.time).catch(() => {});
    });
    item.append(" ", seen);
  }
  return item;
}
function showEvents(events) {
  document.getElementById("happened").replaceChildren(...events.map(eventItem));
  filterEvents();
}
// The list shows the newest events, refreshed every second, or a search's results (from the
// events file: every run's), which stay until the next search or "newest".
const SEARCH_LIMIT = 500;
let searching = false;
let asked = 0;  // a new question (a search, "newest") drops the answers to the ones before
let listed = "";
async function listEvents() {
  if (searching) return;
  const question = asked;
  const response = await fetch(here + "events.json", {cache: "no-store"});
  if (!response.ok) return;
  const text = await response.text();
  if (question !== asked || text === listed) return;  // nothing new: the list (and the link under the pointer) stays
  listed = text;
  showEvents(JSON.parse(text).events);
}
function searchFields() {
  const fields = new URLSearchParams();
  const value = (id) => document.getElementById(id).value.trim();
  for (const [key, id] of [["stream", "event-stream"], ["event", "event-kind"], ["class", "event-class"],
                           ["where", "event-where"]]) {
    if (value(id)) fields.set(key, value(id));
  }
  for (const [key, id] of [["from", "event-from"], ["to", "event-to"]]) {  // (the browser's local time)
    if (value(id)) fields.set(key, new Date(value(id)).getTime() / 1000);
  }
  fields.set("limit", SEARCH_LIMIT);
  return fields;
}
// A search's answer shown (``older``: its next page, after those shown).
let results = [];  // the search's events shown, newest first
let lastSearch = null;  // its fields, for "older"
// The server's JSON answer to ``address``, or the line it says is wrong with the question (a
// 400's text), or why it could not be asked (``what`` names the question).
async function ask(address, what) {
  try {
    const response = await fetch(here + address, {cache: "no-store"});
    return response.ok ? await response.json() : (await response.text()).trim();
  } catch (error) {
    return what + ": " + error;
  }
}
async function runSearch(fields, older) {
  const question = ++asked;
  searching = true;
  const found = document.getElementById("event-found");
  found.className = "";
  found.textContent = "searching…";
  document.getElementById("event-newest").hidden = false;
  document.getElementById("event-older").hidden = true;
  document.getElementById("event-counts").hidden = true;  // (a count's chart: not with the list)
  document.getElementById("happened").hidden = false;
  const answer = await ask("events.json?" + fields, "events search");
  if (question !== asked) return;
  if (typeof answer === "string") {  // what was wrong with it (400), as the server says
    found.className = "failed";
    found.textContent = answer;
    results = [];
    showEvents([]);
    return;
  }
  const shown = new Set(older ? results.map((e) => JSON.stringify(e)) : []);
  results = (older ? results : []).concat(answer.events.filter((e) => !shown.has(JSON.stringify(e))));
  const count = results.length;
  found.textContent = count + (count === 1 ? " event" : " events") + " found" + (answer.more
    ? ", the newest: older ones match too (narrow the search, or: older)" : "");
  document.getElementById("event-older").hidden = !answer.more;
  const exported = new URLSearchParams(lastSearch || fields);  // (the whole search, not a page of it)
  exported.delete("limit");
  const link = document.getElementById("event-export");
  link.href = here + "events.csv?" + exported;
  link.hidden = !count;
  showEvents(results);
}
document.getElementById("event-search").addEventListener("submit", (submit) => {
  submit.preventDefault();
  lastSearch = searchFields();
  runSearch(lastSearch, false).catch(() => {});
});
// The next page of a search: the events before the oldest shown (those of its very moment
// again, less the ones shown).
document.getElementById("event-older").addEventListener("click", () => {
  if (!results.length || !lastSearch) return;
  const fields = new URLSearchParams(lastSearch);
  fields.set("to", results[results.length - 1].time + 0.001);
  runSearch(fields, true).catch(() => {});
});
document.getElementById("event-newest").addEventListener("click", () => {
  asked++;
  searching = false;
  listed = "";
  document.getElementById("event-newest").hidden = true;
  document.getElementById("event-older").hidden = true;
  document.getElementById("event-export").hidden = true;
  document.getElementById("event-found").textContent = "";
  document.getElementById("event-counts").hidden = true;
  document.getElementById("happened").hidden = false;
  listEvents().catch(() => {});
});
// A count: the search's events in each local hour of its span (over 2 days: each day; from
// the start of today and to now where not given), as a bar chart per thing counted (stream,
// kind, where, class), shown instead of the list until the next search or "newest".
const COUNT_HOURS_MOST = 2 * 86400;  // seconds of a span counted by the hour
const BAR = 10, GAP = 2, TALL = 40;  // a period's bar in the charts, in pixels
async function countEvents() {
  const question = ++asked;
  searching = true;
  const found = document.getElementById("event-found"), counts = document.getElementById("event-counts");
  found.className = "";
  found.textContent = "counting…";
  document.getElementById("event-newest").hidden = false;
  document.getElementById("event-older").hidden = true;
  document.getElementById("event-export").hidden = true;
  const fields = searchFields();
  fields.delete("limit");
  const from = fields.has("from") ? Number(fields.get("from")) : new Date().setHours(0, 0, 0, 0) / 1000;
  const to = fields.has("to") ? Number(fields.get("to")) : Date.now() / 1000;
  fields.set("from", from);
  fields.set("to", to);
  fields.set("by", to - from <= COUNT_HOURS_MOST ? "hour" : "day");
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;  // hours as this page's clock shows them
  if (zone) fields.set("tz", zone);
  const answer = await ask("counts.json?" + fields, "count");
  if (question !== asked) return;
  document.getElementById("happened").hidden = true;
  if (typeof answer === "string") {  // what was wrong with it (400), as the server says
    found.className = "failed";
    found.textContent = answer;
    counts.hidden = true;
    return;
  }
  found.textContent = "";
  const heading = document.createElement("div");
  heading.className = "counted";
  const periods = answer.periods, last = periods[periods.length - 1] || "";
  const oneDay = answer.by === "hour" && periods.length && periods[0].slice(0, 10) === last.slice(0, 10);
  heading.textContent = !answer.series.length ? "no events then"
    : answer.total + (answer.total === 1 ? " event" : " events") + ", by " + answer.by
      + (oneDay ? ", " + last.slice(0, 10) : "")  // (the day once: the bars' ends say only the hours)
      + (zone && !answer.zone ? " (the box's clock: it does not know " + zone + ")" : "");
  if (answer.series.length) {  // the same counts as a file, for a spreadsheet
    const table = document.createElement("a");
    table.id = "event-counts-csv";
    table.href = here + "counts.csv?" + fields;
    table.download = "";
    table.textContent = "CSV";
    heading.append(" · ", table);
  }
  const most = answer.series.reduce((top, s) => Math.max(top, ...s.counts), 1);  // (every chart on one scale)
  counts.replaceChildren(heading, ...answer.series.map((s) => countRow(s, periods, most, oneDay ? 11 : 0)));
  counts.hidden = false;
}
// One thing's row of a count: what it is, its total, and its bar for each period (its count
// in the bar's title, and for leaves how long they stayed), ``most`` as tall as a bar goes;
// under the bars the first and last periods' names from their ``shown``th letter (11: the
// hours of a day, without the day).
function countRow(series, periods, most, shown) {
  const row = document.createElement("div"), what = document.createElement("span");
  const total = document.createElement("span"), chart = document.createElement("div");
  row.className = "series";
  what.className = "what";
  what.textContent = [series.stream, series.event, series.where, series.class].filter(Boolean).join(" ");
  total.className = "total";
  total.textContent = series.total;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", periods.length * (BAR + GAP));
  svg.setAttribute("height", TALL);
  periods.forEach((period, index) => {
    const bar = document.createElementNS(SVG, "g"), title = document.createElementNS(SVG, "title");
    bar.setAttribute("class", "bar");
    const stayed = series.dwell && series.dwell[index] !== null  // (leaves: how long they stayed)
      ? ", stayed " + series.dwell[index].toFixed(1) + " s (median)" : "";
    title.textContent = period + ": " + series.counts[index] + stayed;
    const height = TALL * series.counts[index] / most;
    bar.append(title, ...[["slot", 0, TALL], ["count", TALL - height, height]].map(([kind, y, tall]) => {
      const rect = document.createElementNS(SVG, "rect");  // (the slot: where a pointer finds the title)
      rect.setAttribute("class", kind);
      for (const [key, value] of [["x", index * (BAR + GAP)], ["y", y], ["width", BAR], ["height", tall]]) {
        rect.setAttribute(key, value);
      }
      return rect;
    }));
    svg.appendChild(bar);
  });
  const ends = document.createElement("div");
  ends.className = "ends";
  for (const label of [periods[0], periods.length > 1 ? periods[periods.length - 1] : ""]) {
    const end = document.createElement("span");
    end.textContent = label.slice(shown);
    ends.appendChild(end);
  }
  chart.append(svg, ends);
  row.append(what, total, chart);
  return row;
}
document.getElementById("event-count").addEventListener("click", () => countEvents().catch(() => {}));
async function refresh() {
  if (!document.getElementById("events").hidden) listEvents().catch(() => {});
  try {
    const response = await fetch(here + "status.json", {cache: "no-store"});
    show(await response.json());
  } catch (e) {
    const run = document.getElementById("run");
    run.textContent = "disconnected";
    run.className = "ended";
  }
}
function size(bytes) {  // decimal units, 3 significant digits: 950 B, 12.3 kB, 4.56 GB, 1.00 TB
  const units = ["B", "kB", "MB", "GB", "TB"];
  let unit = 0;
  while (unit < units.length - 1 && bytes / 1000 ** unit >= 999.5) unit++;  // (999.7 kB: 1.00 MB)
  const value = bytes / 1000 ** unit;
  return (unit === 0 || value >= 999.5 ? Math.round(value) : value.toPrecision(3)) + " " + units[unit];
}
function hourOf(seconds) {  // "22:00", or "Mon 22:00" when not today
  const at = new Date(seconds * 1000), time = at.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  return at.toDateString() === new Date().toDateString() ? time
    : at.toLocaleDateString([], {weekday: "short"}) + " " + time;
}
function counted(number, thing) {  // "1 file", "14,210 files"
  return number.toLocaleString() + " " + thing + (number === 1 ? "" : "s");
}
// What the recordings and the clips take (status.json's "storage", looked at every half minute or
// so by the server), at the top of their panels: since when, what the last day wrote, and, once
// there is a day of them to go by, how long the disk's free room lasts at that rate (its
// "days_left"); each stream's part in the line's title.
function storageLine(use, word) {
  const parts = [!use.files ? "no " + word + " yet" : size(use.bytes) + " in " + counted(use.files, "file")
                 + (use.oldest === null ? "" : " since " + new Date(use.oldest * 1000).toLocaleDateString())];
  if (use.last_day > 0) parts.push(size(use.last_day) + " written in the last day");
  if (use.free !== null && use.total !== null) {
    const days = Math.floor(use.days_left);  // (null: not known, before a day of files)
    const lasts = days < 1 ? "less than a day" : "about " + counted(days, "day");
    parts.push("disk: " + size(use.free) + " free of " + size(use.total)
               + (use.days_left != null ? ", " + lasts + " at that rate" : ""));
  }
  return parts.join(" · ");
}
// The outputs that cannot write now (a recording "on" that writes nothing: a full disk), a
// line each under the header, until they write again.
function showPaused(paused) {
  const box = document.getElementById("paused");
  const lines = paused.map((p) => "paused: " + p.output + " since " + new Date(p.since * 1000).toLocaleString()
    + ": " + p.error + (p.lost ? " (" + p.lost + " " + p.unit + " lost so far)" : ""));
  box.hidden = !lines.length;
  if ([...box.children].map((line) => line.textContent).join("\\n") === lines.join("\\n")) return;
  box.replaceChildren(...lines.map((text) => Object.assign(document.createElement("div"), {textContent: text})));
}
// What an overload (the status's, an event's) says, as the log and `streamyolo status` say it.
function overloadText(overload) {
  const behind = Object.entries(overload.behind || {}), streams = overload.streams || [];
  const said = behind.map(([name, seconds]) => name + " " + seconds.toFixed(1) + " s behind");
  if (streams.length || !behind.length) said.unshift(Math.round(overload.skipped) + "% of the live streams' frames "
    + "skipped in the last " + Math.round(overload.window) + " s (" + streams.join(", ") + ")");
  return "the machine cannot keep up: " + said.join("; ");
}
// While the live streams skip most of their frames, or a stream falls behind: the machine cannot keep up.
function showOverload(overload) {
  const box = document.getElementById("overload");
  box.hidden = !overload;
  if (!overload) return;
  box.textContent = overloadText(overload) + ", since " + new Date(overload.since * 1000).toLocaleTimeString();
}
function showStorage(storage) {
  for (const word of ["recordings", "clips"]) {
    const line = document.getElementById(word + "-storage"), use = storage ? storage[word] : undefined;
    line.hidden = !use;
    if (!use) continue;
    const text = storageLine(use, word);
    const title = Object.entries(use.streams || {}).sort(([, a], [, b]) => b.bytes - a.bytes)
      .map(([name, part]) => name + ": " + size(part.bytes) + " in " + counted(part.files, "file")).join("\\n");
    if (line.textContent !== text) line.textContent = text;  // (else a selection in it would go every second)
    if (line.title !== title) line.title = title;
  }
}
// The recordings' or the clips' files (``kind``): the newest (a line under them when there are
// older ones: the timeline has those), listed and played in ``VIDEOS[kind]``.
const VIDEOS = {recordings: ["files", "player"], clips: ["clip-files", "clip-player"]};
async function listVideos(kind) {
  const response = await fetch(here + kind + ".json", {cache: "no-store"});
  if (!response.ok) return false;
  const listId = VIDEOS[kind][0], list = document.getElementById(listId);
  const answer = await response.json();
  list.replaceChildren(...answer.files.map((f) => videoItem(kind, f)));
  document.getElementById(listId + "-more").hidden = !answer.more;
  if (kind === "recordings") {  // segments in which objects were seen (record_keep_objects): a filter
    document.getElementById("objects-only-label").hidden = !list.querySelector("li.objects");
    segmented = answer.segmented;
    exportStreams(answer.streams);
  }
  return true;
}
function videoItem(kind, f) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = here + kind + "/" + encodeURIComponent(f.name);
  link.textContent = f.name;
  item.dataset.name = f.name;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    playVideo(kind, f);
  });
  const about = document.createElement("span");
  about.className = "about";
  about.textContent = [f.stream || "", f.objects ? "objects" : "", size(f.size),
                       new Date(f.modified * 1000).toLocaleString()].filter(Boolean).join(" · ");
  item.classList.toggle("objects", Boolean(f.objects));
  item.append(link, about);
  return item;
}
// File ``f`` played (from ``seconds`` into it), marked in its list when it is there.
let playingFile = null;  // the recording the player plays (null: an export, or none yet)
let seekTo = null;  // where the player goes once a file's metadata has come: {src, seconds}
function playVideo(kind, f, seconds) {
  const [listId, playerId] = VIDEOS[kind];
  for (const item of document.getElementById(listId).children) {
    item.classList.toggle("playing", item.dataset.name === f.name);
  }
  const player = document.getElementById(playerId);
  player.src = here + kind + "/" + encodeURIComponent(f.name);
  if (kind === "recordings") {
    playingFile = f;
    seekTo = seconds === undefined ? null : {src: player.src, seconds};
  }
  player.hidden = false;
  player.play().catch(() => {});
}
document.getElementById("player").addEventListener("loadedmetadata", (event) => {
  const player = event.target;
  if (seekTo && seekTo.src === player.currentSrc) player.currentTime = Math.max(0, seekTo.seconds);  // (kept within)
  seekTo = null;
});
// A recording played to its end goes on with its stream's next one in time, from the timeline's
// files or else asked for (an old day's too): a day of segments plays as one video.
function nextOf(ended, files) {
  const at = (f) => f.start === null ? f.modified : f.start;
  const after = (f, g) => at(f) > at(g) || (at(f) === at(g) && f.name > g.name);
  return files.filter((f) => f.stream === ended.stream && after(f, ended))
              .reduce((first, f) => first && !after(first, f) ? first : f, undefined);
}
document.getElementById("player").addEventListener("ended", async () => {
  const ended = playingFile;
  if (!ended || !ended.stream) return;
  let next = recordingFiles.some((f) => f.name === ended.name) ? nextOf(ended, recordingFiles) : undefined;
  for (const ahead of next ? [] : [86400, 600]) {  // a day on; its first 10 minutes if it is more than one answer
    const response = await fetch(here + "recordings.json?" + new URLSearchParams(
      {stream: ended.stream, from: ended.modified, to: ended.modified + ahead, limit: 5000}), {cache: "no-store"});
    if (!response.ok) return;
    const answer = await response.json();
    next = nextOf(ended, answer.files);
    if (!answer.more) break;
  }
  if (next && playingFile === ended) playVideo("recordings", next);
});
// A stream's recordings from one moment to another, cut into one MP4 by the server: played
// here, and a link saves it. The moments are the browser's local time, as the files' names.
function localInput(date) {
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}
// The stream chosen above's recordings over time: the last 24 hours (from its first segment
// at most), or a day chosen above it: a bar for each segment, yellow where objects were seen,
// and the stream's events then as ticks; a click plays that moment, and makes the export the
// minute around it. Its segments are asked for (the list holds only the newest files).
let recordingFiles = [];  // the timeline's: the chosen stream's segments of the span it shows
let drawing = 0;  // each drawing's number: the answer to one drawn again meanwhile is dropped
let segmented = [];  // the streams with segments (with a timeline)
function clock(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}
function dayOf(seconds) {  // the local day of a moment, as a date input writes it
  return localInput(new Date(seconds * 1000)).slice(0, 10);
}
function dayStart(day, after) {  // the moment local day ``day`` begins (``after`` days later), in seconds
  const [year, month, date] = day.split("-").map(Number);
  return new Date(year, month - 1, date + after).getTime() / 1000;
}
// What the timeline spans: the day chosen (up to now, today), or the last 24 hours (from the
// stream's first segment at most).
function timelineSpan(files) {
  const day = document.getElementById("timeline-day").value, now = Date.now() / 1000;
  if (!day) return [Math.max(now - 86400, Math.min(Infinity, ...files.map((f) => f.start))), now];
  const begin = dayStart(day, 0), next = dayStart(day, 1);
  return [begin, begin < now ? Math.min(next, now) : next];
}
// Draws the timeline; true once drawn (false: not, or drawn again meanwhile).
async function drawTimeline() {
  const bar = document.getElementById("timeline"), times = document.getElementById("timeline-times");
  const stream = document.getElementById("export-stream").value, day = document.getElementById("timeline-day").value;
  const number = ++drawing;
  document.getElementById("timeline-later").disabled = !day;
  const parts = [bar, times, document.getElementById("timeline-days")];
  if (!segmented.includes(stream)) {
    for (const part of parts) part.hidden = true;
    return false;
  }
  for (const old of bar.querySelectorAll(".span, .tick")) old.remove();  // (another span's)
  const asked = day ? {from: dayStart(day, 0), to: dayStart(day, 1)} : {from: Date.now() / 1000 - 86400};
  const response = await fetch(here + "recordings.json?" + new URLSearchParams({stream: stream, ...asked,
                                                                               limit: 5000}), {cache: "no-store"});
  const files = response.ok ? (await response.json()).files.filter((f) => f.start !== null) : [];
  if (number !== drawing) return false;
  recordingFiles = files;
  const [begin, end] = timelineSpan(files);
  bar.dataset.begin = begin;
  bar.dataset.end = end;
  const cursor = bar.querySelector(".cursor");
  bar.replaceChildren(...files.filter((f) => f.modified > begin && f.start < end).map((f) => {
    const block = document.createElement("div");
    const left = Math.max(0, (f.start - begin) / (end - begin));
    const right = Math.min(1, (f.modified - begin) / (end - begin));
    block.className = f.objects ? "span objects" : "span";
    block.style.left = (100 * left) + "%";
    block.style.width = (100 * Math.max(0, right - left)) + "%";
    block.title = f.name;
    return block;
  }), ...(cursor ? [cursor] : []));
  if (cursor) placeCursor(cursor, Number(cursor.dataset.at));
  document.getElementById("timeline-begin").textContent = clock(begin);
  document.getElementById("timeline-end").textContent = clock(end);
  for (const part of parts) part.hidden = false;  // (once drawn: shown meanwhile, it stays)
  eventTicks(bar, number, begin, end, stream).catch(() => {});
  return true;
}
// The stream's events then (searched: every one of a day, with --events every run's) as ticks
// on its timeline, named as the events list names them.
async function eventTicks(bar, number, begin, end, stream) {
  // (a stream's first events come as it starts: up to a second before its first segment's name)
  const from = document.getElementById("timeline-day").value ? begin : Math.max(end - 86400, begin - 60);
  const response = await fetch(here + "events.json?" + new URLSearchParams(
    {stream: stream, from: from, to: end, limit: 5000}), {cache: "no-store"});
  if (!response.ok) return;
  const events = (await response.json()).events;
  if (number !== drawing) return;  // drawn again meanwhile
  for (const old of bar.querySelectorAll(".tick")) old.remove();
  for (const e of events) {
    const tick = document.createElement("div");
    tick.className = "tick";
    tick.style.left = (100 * Math.max(0, e.time - begin) / (end - begin)) + "%";
    tick.title = clock(e.time) + ": " + describe(e);
    bar.appendChild(tick);
  }
}
function placeCursor(cursor, seconds) {
  const bar = document.getElementById("timeline");
  const begin = Number(bar.dataset.begin), end = Number(bar.dataset.end);
  cursor.dataset.at = seconds;
  cursor.hidden = !(seconds >= begin && seconds <= end);
  cursor.style.left = (100 * (seconds - begin) / (end - begin)) + "%";
}
// Another day on the timeline (``day`` "": the last 24 hours).
function showDay(day) {
  document.getElementById("timeline-day").value = day;
  drawTimeline().catch(() => {});
}
document.getElementById("timeline-day").addEventListener("change", () => drawTimeline().catch(() => {}));
document.getElementById("timeline-earlier").addEventListener("click", () => {
  const day = document.getElementById("timeline-day").value || dayOf(Date.now() / 1000);  // (or today)
  showDay(dayOf(dayStart(day, -1)));
});
document.getElementById("timeline-later").addEventListener("click", () => {
  const day = document.getElementById("timeline-day").value;
  if (!day) return;
  const next = dayStart(day, 1);
  showDay(next > Date.now() / 1000 ? "" : dayOf(next));
});
// The recordings panel, open at stream ``stream``'s recording of moment ``seconds`` (an event's),
// on the timeline of its day when that is before the last 24 hours.
async function recordingAt(stream, seconds) {
  const section = document.getElementById("recordings");
  if (section.hidden) {
    section.hidden = false;
    await listVideos("recordings");
  }
  const select = document.getElementById("export-stream");
  if ([...select.options].some((option) => option.value === stream)) {
    select.value = stream;
    const day = document.getElementById("timeline-day");
    if (seconds < Date.now() / 1000 - 86400) day.value = dayOf(seconds);
    else if (day.value && (seconds < dayStart(day.value, 0) || seconds >= dayStart(day.value, 1))) day.value = "";
    if (await drawTimeline()) playAt(seconds, LEAD);
  }
  section.scrollIntoView();
}
// An event's moment plays from this many seconds before it: what led to it is seen, and a
// segment's name counts whole seconds (it may start up to a second after the name says).
const LEAD = 1;
// Plays the recording at moment ``seconds`` (from ``lead`` seconds before it), the cursor on it.
function playAt(seconds, lead = 0) {
  // The last to start by then (a moment past its end, in a gap: it ends at once, and the next
  // plays), or the first after. (Not by when each was last written: a file processed slower
  // than its video plays is written long after the end of its place.)
  const files = [...recordingFiles].sort((a, b) => a.start - b.start), from = seconds - lead;
  const file = files.filter((f) => f.start <= from).pop() || files[0];
  if (!file) return;
  playVideo("recordings", file, from - file.start);
  document.getElementById("timeline-at").textContent = clock(seconds);
  const bar = document.getElementById("timeline");
  let cursor = bar.querySelector(".cursor");
  if (!cursor) {
    cursor = document.createElement("div");
    cursor.className = "cursor";
    bar.appendChild(cursor);
  }
  placeCursor(cursor, seconds);
  document.getElementById("export-from").value = localInput(new Date((seconds - 30) * 1000));
  document.getElementById("export-to").value = localInput(new Date((seconds + 30) * 1000));
}
document.getElementById("timeline").addEventListener("click", (event) => {
  const bar = event.currentTarget, box = bar.getBoundingClientRect();
  const begin = Number(bar.dataset.begin), end = Number(bar.dataset.end);
  playAt(begin + (end - begin) * (event.clientX - box.left) / box.width);
});
document.getElementById("export-stream").addEventListener("change", () => drawTimeline().catch(() => {}));
function exportStreams(names) {  // the streams with recordings (the server's answer's, not only the list's)
  const select = document.getElementById("export-stream");
  const chosen = select.value;
  select.replaceChildren(...names.map((name) => new Option(name, name)));
  if (names.includes(chosen)) select.value = chosen;
  document.getElementById("export").hidden = !names.length;
  drawTimeline().catch(() => {});
  const from = document.getElementById("export-from"), to = document.getElementById("export-to");
  if (!to.value) to.value = localInput(new Date());
  if (!from.value) from.value = localInput(new Date(Date.now() - 10 * 60000));
}
document.getElementById("export").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = document.getElementById("export-result");
  const stream = document.getElementById("export-stream").value;
  const seconds = (id) => new Date(document.getElementById(id).value).getTime() / 1000;
  result.className = "";
  result.textContent = "exporting…";
  const response = await fetch(here + "export.mp4?" + new URLSearchParams(
    {stream: stream, from: seconds("export-from"), to: seconds("export-to")}), {cache: "no-store"});
  if (!response.ok) {
    result.className = "failed";
    result.textContent = (await response.text()).trim();
    return;
  }
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = named ? named[1] : stream + "-export.mp4";
  link.textContent = "save " + link.download + " (" + size(blob.size) + ")";
  result.replaceChildren(link);
  const player = document.getElementById("player");
  for (const other of document.querySelectorAll("#files .playing")) other.classList.remove("playing");
  playingFile = null;
  player.src = link.href;
  player.hidden = false;
  player.play().catch(() => {});
});
document.getElementById("objects-only").addEventListener("change", (event) => {
  document.getElementById("files").classList.toggle("objects-only", event.target.checked);
});
// A header button that opens a panel (listed by ``list``), shown when the page has one (when
// ``probe`` answers).
function panel(name, list, probe) {
  const button = document.getElementById("show-" + name);
  button.addEventListener("click", async () => {
    const section = document.getElementById(name);
    section.hidden = !section.hidden;
    if (!section.hidden) await list();
  });
  fetch(here + probe, {cache: "no-store"}).then((response) => { button.hidden = !response.ok; }).catch(() => {});
}
panel("recordings", () => listVideos("recordings"), "recordings.json?limit=1");
// An address that names a moment (an event's recording_url: #recording=<stream>@<epoch seconds>)
// opens the recordings there.
function openNamedMoment() {
  const named = /^#recording=(.+)@([0-9.]+)$/.exec(location.hash);
  if (!named) return;
  fetch(here + "recordings.json?limit=1", {cache: "no-store"}).then((response) => {  // (whether there are any)
    if (response.ok) recordingAt(decodeURIComponent(named[1]), Number(named[2])).catch(() => {});
  }).catch(() => {});
}
window.addEventListener("hashchange", openNamedMoment);
openNamedMoment();
panel("clips", () => listVideos("clips"), "clips.json?limit=1");
panel("events", listEvents, "events.json");
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""
