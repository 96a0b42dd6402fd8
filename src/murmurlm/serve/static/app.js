// murmurlm web page: upload a recording to POST /v1/predict?plot=true and show the result, or up to
// four recordings of one patient, each tagged with its site, to POST /v1/patients?plot=true.
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

const SITES = ["AV", "PV", "TV", "MV", "Phc"];
const MAX_SITES = 4;

function renderFeatures(features) {
  const body = document.querySelector("#features tbody");
  body.replaceChildren();
  for (const f of features) {
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
  document.getElementById("override-note").hidden = !features.some((f) => f.overridden);
}

function offerDownload(name, data) {
  const copy = Object.assign({}, data);
  delete copy.plot_png;
  delete copy.heartbeat_png;
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(new Blob([JSON.stringify(copy, null, 2)], {type: "application/json"}));
  const link = document.getElementById("download");
  link.href = downloadUrl;
  link.download = name.replace(/\.[^.]*$/, "") + ".murmurlm.json";
}

function guessSite(name, index) {
  const m = name.match(/_(AV|PV|TV|MV|Phc)(?:_\d+)?\.[^.]*$/);
  return m ? m[1] : SITES[index % MAX_SITES];
}

function chooseSites(files) {
  result.hidden = true;
  const body = document.querySelector("#site-table tbody");
  body.replaceChildren();
  files.forEach((file, i) => {
    const row = document.createElement("tr");
    cell(row, file.name);
    const select = document.createElement("select");
    select.setAttribute("aria-label", `site of ${file.name}`);
    for (const site of SITES) {
      const option = document.createElement("option");
      option.value = option.textContent = site;
      select.appendChild(option);
    }
    select.value = guessSite(file.name, i);
    const td = document.createElement("td");
    td.appendChild(select);
    row.appendChild(td);
    body.appendChild(row);
  });
  document.getElementById("patient-sites").hidden = false;
  setStatus(`${files.length} recordings of one patient: check each one's site, then analyse`, false);
  document.getElementById("patient-go").onclick = () => {
    const sites = Array.from(body.querySelectorAll("select")).map((s) => s.value);
    uploadPatient(files, sites);
  };
}

async function postForm(url, form, what) {
  let response;
  try {
    response = await fetch(url, {method: "POST", body: form});
  } catch (err) {
    setStatus(`could not reach the service: ${err}`, true);
    return null;
  }
  let data;
  try {
    data = await response.json();
  } catch (err) {
    setStatus(`the service answered ${response.status} without JSON`, true);
    return null;
  }
  if (!response.ok) {
    setStatus(`${what}: ${data.detail || response.statusText} (HTTP ${response.status})`, true);
    return null;
  }
  return data;
}

async function uploadPatient(files, sites) {
  result.hidden = true;
  setStatus(`analysing the patient's ${files.length} recordings ...`, false);
  const form = new FormData();
  files.forEach((file, i) => form.append(sites[i], file, file.name));
  const data = await postForm("/v1/patients?plot=true", form, "patient");
  if (!data) return;
  setStatus(`patient: done`, false);
  showPatient(data);
}

function showPatient(data) {
  document.getElementById("result-title").textContent = `Patient: ${data.sites.length} site(s)`;
  const summary = document.getElementById("summary-list");
  summary.replaceChildren();
  const where = data.murmur_locations.label;
  listItem(summary, `murmur heard at: ${where === "nan" ? "none" : where.split("+").join(", ")}`);
  listItem(summary, `most audible at: ${data.most_audible_location === "nan" ? "none" : data.most_audible_location}`);
  if (data.outcome) {
    listItem(summary, `outcome: ${data.outcome.label} (p ${data.outcome.probabilities[data.outcome.label].toFixed(2)})`);
  }
  listItem(summary, `model: ${data.model}, ${data.elapsed_s.toFixed(2)} s`);
  const sitesTable = document.getElementById("sites");
  const body = sitesTable.querySelector("tbody");
  body.replaceChildren();
  for (const s of data.sites) {
    const row = document.createElement("tr");
    cell(row, s.site);
    cell(row, s.source || "");
    cell(row, s.quality || "unknown");
    cell(row, s.heart_rate_bpm === null ? "unknown" : `${Math.round(s.heart_rate_bpm)} bpm`);
    cell(row, `${s.heard ? "yes" : "no"} (p ${s.p_murmur_heard.toFixed(2)})`, s.heard ? "heard" : "");
    body.appendChild(row);
  }
  sitesTable.hidden = false;
  const warnings = document.getElementById("warnings");
  warnings.replaceChildren();
  for (const w of data.warnings) listItem(warnings, w);
  renderFeatures(data.features);
  const plot = document.getElementById("plot");
  plot.src = "data:image/png;base64," + data.plot_png;
  plot.hidden = !data.plot_png;
  document.getElementById("heartbeat-figure").hidden = true;
  offerDownload("patient.json", data);
  result.hidden = false;
}

function show(name, data) {
  document.getElementById("sites").hidden = true;
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
  listItem(summary, `quality: ${q.flag}` + (q.reason ? `, ${q.reason}` : "") +
                    ` (${Math.round(q.usable_fraction * 100)}% usable; ${q.detail})`);
  const beat = data.heartbeat;
  if (beat) {
    listItem(summary, `average heartbeat: ${beat.cycles_kept} cycle(s)` +
                      (beat.reliable ? "" : ` (description unreliable: ${beat.fallback || "too few cycles"})`));
  }
  listItem(summary, `model: ${data.model}, ${data.elapsed_s.toFixed(2)} s`);
  const warnings = document.getElementById("warnings");
  warnings.replaceChildren();
  for (const w of data.warnings) listItem(warnings, w);

  renderFeatures(data.features);

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
  offerDownload(name, data);
  result.hidden = false;
}

async function upload(file) {
  if (!file) return;
  document.getElementById("patient-sites").hidden = true;
  result.hidden = true;
  setStatus(`analysing ${file.name} ...`, false);
  const form = new FormData();
  form.append("file", file, file.name);
  const data = await postForm("/v1/predict?plot=true", form, file.name);
  if (!data) return;
  setStatus(`${file.name}: done`, false);
  show(file.name, data);
}

function take(files) {
  const list = Array.from(files);
  if (list.length === 0) return;
  if (list.length === 1) return upload(list[0]);
  if (list.length > MAX_SITES) {
    setStatus(`${list.length} files: a patient takes at most ${MAX_SITES} recordings, one per site`, true);
    return;
  }
  chooseSites(list);
}

input.addEventListener("change", () => take(input.files));
zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  zone.classList.remove("over");
  take(e.dataTransfer.files);
});
zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });

fetch("/healthz").then((r) => r.json()).then((h) => {
  document.getElementById("limits").textContent =
    `up to ${h.limits.max_upload_mb} MiB and ${h.limits.max_duration_s} s; model ${h.model}`;
}).catch(() => {});
