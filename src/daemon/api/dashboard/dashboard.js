// The dashboard: draws GET /v1/dashboard, and fetches it again each time the server's
// event stream (GET /v1/dashboard/events) says something changed. When the API needs a
// bearer token, the page asks for it once and keeps it for this tab only.
"use strict";

const $ = (id) => document.getElementById(id);

function headers() {
  const token = sessionStorage.getItem("hotfolderd-token");
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path) {
  let r = await fetch(path, { headers: headers() });
  if (r.status === 401) {
    const token = prompt("hotfolderd API token");
    if (token) sessionStorage.setItem("hotfolderd-token", token.trim());
    r = await fetch(path, { headers: headers() });
  }
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fill(id, rows) {
  const body = $(id);
  body.replaceChildren(...rows);
}

function bar(fraction) {
  const pct = Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
  return el("div", { class: "bar", title: pct + " %" }, el("div", { style: "width:" + pct + "%" }));
}

function hours(h) { return (h || 0).toFixed(h < 1 ? 3 : 2) + " h"; }

function name(item) {
  if (item.job) return "upload " + item.job;
  return item.key;
}

function lossCurve(points) {
  if (!points || points.length < 2) return el("div", { class: "muted" }, "no loss recorded");
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => ((x - x0) / ((x1 - x0) || 1)) * 300;
  const sy = (y) => 85 - ((y - y0) / ((y1 - y0) || 1)) * 80;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "loss");
  svg.setAttribute("viewBox", "0 0 300 90");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#2e6be6");
  line.setAttribute("stroke-width", "1.5");
  line.setAttribute("points", points.map((p) => sx(p[0]) + "," + sy(p[1])).join(" "));
  svg.append(line);
  return svg;
}

function draw(d) {
  $("queued").textContent = d.queued + " queued";
  $("counts").textContent = Object.entries(d.counts)
    .filter(([, n]) => n > 0).map(([s, n]) => s + " " + n).join(" · ");
  $("model-path").textContent = d.serving_model.path;
  $("model-sha").textContent = d.serving_model.sha256 ? "sha256 " + d.serving_model.sha256.slice(0, 16) + "…" : "";
  fill("throughput-rows", d.throughput.length ? d.throughput.map((t) =>
    el("tr", {}, el("td", {}, t.source), el("td", {}, t.audio_hours_per_hour.toFixed(3) + " audio h/h")))
    : [el("tr", {}, el("td", { class: "muted" }, "nothing finished in the last hour"))]);
  fill("running-rows", d.running.length ? d.running.map((r) => el("tr", { "data-input": r.input },
    el("td", {}, "#" + r.input), el("td", {}, r.key, el("div", { class: "muted" }, r.source)),
    el("td", {}, bar(r.progress)),
    el("td", {}, r.audio_seconds_total
      ? (r.audio_seconds_done || 0).toFixed(0) + " / " + r.audio_seconds_total.toFixed(0) + " s"
      : (r.audio_seconds_done || 0).toFixed(0) + " s")))
    : [el("tr", {}, el("td", { class: "muted" }, "no job running"))]);
  fill("recent-rows", d.recent.map((r) => el("tr", { "data-input": r.input, "data-state": r.state },
    el("td", {}, r.input),
    el("td", {}, name(r), el("div", { class: "muted" }, r.source)),
    el("td", { class: "state-" + r.state }, r.state, r.reason && r.state !== "done" && r.state !== "running"
      ? el("div", { class: "reason" }, r.reason) : null),
    el("td", {}, ...r.outputs.map((o) => o.href
      ? el("a", { href: o.href, title: o.location }, o.format + " ")
      : el("span", { title: o.location }, o.format + " "))))));
  fill("failure-rows", d.failures.length ? d.failures.map((f) => el("tr", {},
    el("td", {}, "#" + f.input), el("td", {}, f.key, el("div", { class: "muted" }, f.source)),
    el("td", { class: "reason" }, f.reason)))
    : [el("tr", {}, el("td", { class: "muted" }, "no failures"))]);
  $("dataset-list").replaceChildren(...(d.datasets.length ? d.datasets.map((s) => el("div", { class: "dataset", "data-name": s.name },
    el("div", {}, el("strong", {}, s.name), " — ", hours(s.new_hours) + " of " + hours(s.threshold_hours) + " toward the next run"),
    bar(s.progress), el("div", { class: "muted" }, hours(s.total_hours) + " in all")))
    : [el("div", { class: "muted" }, "no datasets")]));
  $("run-list").replaceChildren(...(d.runs.length ? d.runs.map((r) => el("div", { class: "run" },
    el("div", {}, el("strong", {}, r.id), " ", el("span", { class: "state-" + r.state }, r.state)),
    el("div", { class: "muted" }, r.wer_before !== null && r.wer_before !== undefined
      ? "WER " + Number(r.wer_before).toFixed(3) + " → " + Number(r.wer_after).toFixed(3) : (r.detail || "")),
    lossCurve(r.loss)))
    : [el("div", { class: "muted" }, "no training runs yet")]));
  $("status").textContent = "updated " + new Date(d.generated_at * 1000).toLocaleTimeString();
  $("status").className = "muted";
  document.body.dataset.loaded = "true";
}

async function refresh() {
  try {
    draw(await (await api("/v1/dashboard")).json());
  } catch (e) {
    $("status").textContent = "offline: " + e.message;
    $("status").className = "offline";
  }
}

// Server-Sent Events read through fetch, so the token header goes with them.
async function follow() {
  for (;;) {
    try {
      const r = await api("/v1/dashboard/events");
      const reader = r.body.getReader();
      const text = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += text.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (/^event: changed$/m.test(event)) await refresh();
        }
      }
    } catch (e) {
      $("status").textContent = "offline: " + e.message;
      $("status").className = "offline";
    }
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

refresh().then(follow);
