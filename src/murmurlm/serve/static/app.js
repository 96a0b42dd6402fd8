// murmurlm web page: upload a recording to POST /v1/predict?plot=true and show the result.
// Plain browser JavaScript, no build step and no external resources (works offline).
"use strict";

const input = document.getElementById("file-input");
const zone = document.getElementById("drop-zone");
const statusLine = document.getElementById("status");
const result = document.getElementById("result");
let downloadUrl = null;

function setStatus(text, isError) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function listItem(list, text) {
  const li = document.createElement("li");
  li.textContent = text;
  list.appendChild(li);
}

function show(name, data) {
  document.getElementById("result-title").textContent = name;
  const summary = document.getElementById("summary-list");
  summary.replaceChildren();
  const inp = data.input;
  listItem(summary, `${inp.format} ${inp.subtype}, ${inp.sampling_rate} Hz, ${inp.channels} channel(s), ` +
                    `${inp.duration_s.toFixed(1)} s`);
  const seg = data.segmentation;
  listItem(summary, seg.available
    ? `heart rate ${seg.heart_rate_bpm === null ? "unknown" : Math.round(seg.heart_rate_bpm) + " bpm"}, ` +
      `${seg.cycles} complete cycle(s)`
    : "heart cycles: no segmentation");
  const q = data.quality;
  listItem(summary, `quality: ${q.flag} (${Math.round(q.usable_fraction * 100)}% usable; ${q.detail})`);
  const beat = data.heartbeat;
  if (beat) {
    listItem(summary, `average heartbeat: ${beat.cycles_kept} cycle(s)` +
                      (beat.reliable ? "" : ` (description unreliable: ${beat.fallback || "too few cycles"})`));
  }
  listItem(summary, `model: ${data.model}, ${data.elapsed_s.toFixed(2)} s`);
  const warnings = document.getElementById("warnings");
  warnings.replaceChildren();
  for (const w of data.warnings) listItem(warnings, w);

  const body = document.querySelector("#features tbody");
  body.replaceChildren();
  for (const f of data.features) {
    const row = document.createElement("tr");
    cell(row, f.name);
    cell(row, f.display || f.label);
    const pCell = cell(row, f.overridden ? "*" : f.probability === null ? "-" : f.probability.toFixed(2), "p");
    if (f.overridden) pCell.title = "no murmur to describe, because Murmur is not Present; the feature's own probabilities are shown";
    const probs = cell(row, "", "probs");
    for (const [cls, p] of Object.entries(f.probabilities)) {
      const span = document.createElement("span");
      span.textContent = `${cls} ${p.toFixed(2)}`;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${Math.round(p * 40)}px`;
      span.appendChild(bar);
      probs.appendChild(span);
    }
    body.appendChild(row);
  }

  document.getElementById("override-note").hidden = !data.features.some((f) => f.overridden);

  const plot = document.getElementById("plot");
  if (data.plot_png) {
    plot.src = "data:image/png;base64," + data.plot_png;
    plot.hidden = false;
  } else {
    plot.hidden = true;
  }
  const beatFigure = document.getElementById("heartbeat-figure");
  if (data.heartbeat_png) {
    document.getElementById("heartbeat").src = "data:image/png;base64," + data.heartbeat_png;
    beatFigure.hidden = false;
  } else {
    beatFigure.hidden = true;
  }
  const copy = Object.assign({}, data);
  delete copy.plot_png;
  delete copy.heartbeat_png;
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(new Blob([JSON.stringify(copy, null, 2)], {type: "application/json"}));
  const link = document.getElementById("download");
  link.href = downloadUrl;
  link.download = name.replace(/\.[^.]*$/, "") + ".murmurlm.json";
  result.hidden = false;
}

async function upload(file) {
  if (!file) return;
  result.hidden = true;
  setStatus(`analysing ${file.name} ...`, false);
  const form = new FormData();
  form.append("file", file, file.name);
  let response;
  try {
    response = await fetch("/v1/predict?plot=true", {method: "POST", body: form});
  } catch (err) {
    setStatus(`could not reach the service: ${err}`, true);
    return;
  }
  let data;
  try {
    data = await response.json();
  } catch (err) {
    setStatus(`the service answered ${response.status} without JSON`, true);
    return;
  }
  if (!response.ok) {
    setStatus(`${file.name}: ${data.detail || response.statusText} (HTTP ${response.status})`, true);
    return;
  }
  setStatus(`${file.name}: done`, false);
  show(file.name, data);
}

input.addEventListener("change", () => upload(input.files[0]));
zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  zone.classList.remove("over");
  if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
});
zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });

fetch("/healthz").then((r) => r.json()).then((h) => {
  document.getElementById("limits").textContent =
    `up to ${h.limits.max_upload_mb} MiB and ${h.limits.max_duration_s} s; model ${h.model}`;
}).catch(() => {});
