"""The status page itself: one HTML document, its style sheet and script, no external assets.

The script polls ``api/status`` and swaps a camera's image only when its frame number changed, so
an idle camera is not re-downloaded. Text is set with ``textContent``: nothing from the daemon is
ever parsed as HTML.
"""

from __future__ import annotations

HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>faceagent status</title>
<link rel="stylesheet" href="page.css">
<script src="page.js" defer></script>
</head>
<body data-refresh="{refresh_ms}">
<header>
  <h1>faceagent</h1>
  <span id="summary">connecting…</span>
  <span class="note">face detection, not identification</span>
</header>
<main>
  <section id="cameras"></section>
  <section id="events-box">
    <h2>Last events</h2>
    <p id="no-events">No event yet.</p>
    <ol id="events"></ol>
  </section>
</main>
<template id="camera-tpl">
  <article class="camera">
    <h2 class="name"></h2>
    <div class="frame"><img class="shot" alt="latest frame"><p class="noimg">no picture yet</p></div>
    <p class="caption"></p>
    <dl class="facts">
      <dt>faces</dt><dd class="faces"></dd>
      <dt>fps</dt><dd class="fps"></dd>
      <dt>source</dt><dd class="source"></dd>
      <dt>detection</dt><dd class="detect"></dd>
      <dt>relay</dt><dd class="relay"></dd>
      <dt>frames</dt><dd class="frames"></dd>
    </dl>
    <table class="stages"><thead><tr><th>stage</th><th>ms</th></tr></thead><tbody></tbody></table>
  </article>
</template>
</body>
</html>
"""

CSS = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
header { display: flex; gap: 1.5em; align-items: baseline; padding: .6em 1em; background: #222; }
header h1 { font-size: 1.2em; margin: 0; }
.note { margin-left: auto; color: #aaa; font-size: .85em; }
main { display: flex; flex-wrap: wrap; gap: 1em; padding: 1em; }
#cameras { display: flex; flex-wrap: wrap; gap: 1em; flex: 3 1 640px; }
.camera { background: #1b1b1b; border-radius: 6px; padding: .6em; flex: 1 1 480px; }
.camera h2, #events-box h2 { font-size: 1em; margin: 0 0 .4em; }
.frame img { width: 100%; height: auto; display: block; background: #000; }
.frame img:not([src]) { display: none; }
.frame img[src] + .noimg { display: none; }
.caption { color: #aaa; font-size: .85em; margin: .2em 0; }
.facts { display: grid; grid-template-columns: auto 1fr auto 1fr auto 1fr; gap: .1em .6em; margin: .5em 0; }
.facts dt { color: #aaa; }
.facts dd { margin: 0; font-variant-numeric: tabular-nums; }
/* Stages on one wrapping line: "preprocess 0.4  inference 8.2 ..." (ms). */
.stages { font-size: .85em; color: #ccc; }
.stages thead { display: none; }
.stages tbody { display: flex; flex-wrap: wrap; gap: .1em 1.2em; }
.stages tr { display: flex; gap: .4em; }
.stages td:last-child { color: #eee; font-variant-numeric: tabular-nums; }
.stages td:last-child::after { content: " ms"; color: #888; }
#events-box { flex: 1 1 260px; background: #1b1b1b; border-radius: 6px; padding: .6em; }
#events { list-style: none; padding: 0; margin: 0; }
#events li { display: flex; gap: .6em; align-items: center; padding: .25em 0; border-bottom: 1px solid #2a2a2a; }
#events img { width: 48px; height: 48px; object-fit: cover; background: #000; border-radius: 3px; }
#events .blank { width: 48px; height: 48px; }
.type-new { color: #6d6; } .type-end { color: #d96; } .type-update { color: #8af; }
.UNLOCKED, .RETRYING { color: #fb4; } .ENDED { color: #d66; } .LOCKED, .ONLINE { color: #6d6; }
"""

JS = """
"use strict";
const refresh = Number(document.body.dataset.refresh) || 1000;
const cams = new Map();

function text(root, sel, value, cls) {
  const el = root.querySelector(sel);
  el.textContent = value;
  if (cls !== undefined) el.className = sel.slice(1) + " " + cls;
}

function camera(name) {
  if (cams.has(name)) return cams.get(name);
  const node = document.getElementById("camera-tpl").content.firstElementChild.cloneNode(true);
  node.dataset.camera = name;
  node.querySelector(".name").textContent = name;
  document.getElementById("cameras").appendChild(node);
  const entry = {node, frame: null};
  const shot = node.querySelector(".shot");
  // The caption says what was really decoded: its size, or that the picture failed.
  shot.onload = () => {
    shot.dataset.loaded = shot.naturalWidth + "x" + shot.naturalHeight;
    node.querySelector(".caption").textContent = "frame " + entry.frame + " · " + shot.dataset.loaded;
  };
  shot.onerror = () => { node.querySelector(".caption").textContent = "frame could not be loaded"; };
  cams.set(name, entry);
  return entry;
}

function showCamera(name, cam) {
  const entry = camera(name);
  const n = entry.node;
  const st = cam.states || {};
  text(n, ".faces", String(cam.faces));
  text(n, ".fps", cam.fps.toFixed(1));
  text(n, ".source", st.source || "—", st.source || "");
  text(n, ".detect", st.detect || "—");
  text(n, ".relay", st.relay || "none", st.relay || "");
  text(n, ".frames", String(cam.frames));
  const body = n.querySelector(".stages tbody");
  body.replaceChildren(...Object.entries(cam.ms).map(([stage, ms]) => {
    const row = document.createElement("tr");
    for (const v of [stage, ms.toFixed(1)]) {
      const td = document.createElement("td"); td.textContent = v; row.appendChild(td);
    }
    return row;
  }));
  if (cam.frame !== null && cam.frame !== entry.frame) {
    entry.frame = cam.frame;
    n.querySelector(".shot").src = "frame/" + encodeURIComponent(name) + ".jpg?n=" + cam.frame;
  }
}

const rows = new Map();

function eventRow(e) {
  const li = document.createElement("li");
  li.dataset.serial = e.serial;
  let pic;
  if (e.thumb) {
    pic = document.createElement("img");
    pic.alt = "face " + e.id;
    pic.onload = () => { pic.dataset.loaded = pic.naturalWidth + "x" + pic.naturalHeight; };
    pic.src = "event/" + e.serial + ".jpg";
  } else {
    pic = document.createElement("span"); pic.className = "blank";
  }
  const what = document.createElement("span");
  const type = document.createElement("b");
  type.className = "type-" + e.type; type.textContent = e.type;
  const when = new Date(e.time * 1000).toLocaleTimeString();
  what.append(type, " " + e.camera + " · " + e.id + " · " + e.score.toFixed(2) + " · " + when);
  li.append(pic, what);
  return li;
}

function showEvents(events) {
  // Rows are kept by serial, so a thumbnail is fetched once, not on every refresh.
  document.getElementById("no-events").hidden = events.length > 0;
  const keep = new Set(events.map((e) => e.serial));
  for (const serial of rows.keys()) if (!keep.has(serial)) rows.delete(serial);
  document.getElementById("events").replaceChildren(...events.map((e) => {
    if (!rows.has(e.serial)) rows.set(e.serial, eventRow(e));
    return rows.get(e.serial);
  }));
}

async function tick() {
  try {
    const reply = await fetch("api/status", {cache: "no-store", credentials: "same-origin"});
    if (reply.status === 401) { document.getElementById("summary").textContent = "token needed"; return; }
    const data = await reply.json();
    for (const [name, cam] of Object.entries(data.cameras)) showCamera(name, cam);
    showEvents(data.events);
    const fps = Object.values(data.cameras).map((c) => c.fps.toFixed(1) + " fps").join(", ");
    document.getElementById("summary").textContent = "up " + Math.round(data.uptime) + " s · " + fps;
  } catch (err) {
    document.getElementById("summary").textContent = "daemon not reachable";
  } finally {
    setTimeout(tick, refresh);
  }
}
tick();
"""


def render_html(*, refresh_seconds: float) -> bytes:
    """The page, with its refresh period (ms) on ``<body data-refresh>``."""
    return HTML.replace("{refresh_ms}", str(round(refresh_seconds * 1000))).encode()
