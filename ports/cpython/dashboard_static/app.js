// The gatemq dashboard: plain JavaScript over the /api/v5 endpoints, no build step.
// Every value from the broker is written with textContent: client IDs and certificate DNs are
// whatever a client or a certificate says.
"use strict";

const MODES = [
  ["disabled", "disabled"], ["cn", "cn: the certificate's Common Name"],
  ["dn", "dn: the subject Distinguished Name"], ["crt", "crt: the DER bytes"],
  ["pem", "pem: the certificate in base64"], ["md5", "md5: hex MD5 of the DER"],
];
const REFRESH_MS = 2000;

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("gatemq.token");
let user = sessionStorage.getItem("gatemq.user") || "";
let timer = null;
let lastClients = null;

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || ("HTTP " + status));
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch("/api/v5/" + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (r.status === 401 && path !== "login") {
    logout("Your session has ended; log in again.");
    throw new ApiError(401, data);
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

function show(el, on) { el.hidden = !on; }

function setMsg(el, text, kind) {
  el.textContent = text;
  el.className = "msg" + (kind ? " " + kind : "");
}

// ---- login ----

function logout(why) {
  token = null;
  lastClients = null;
  sessionStorage.removeItem("gatemq.token");
  clearInterval(timer);
  timer = null;
  show($("app"), false);
  show($("login"), true);
  setMsg($("login-error"), why || "", "error");
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  setMsg($("login-error"), "");
  try {
    const r = await api("POST", "login", { username: $("username").value, password: $("password").value });
    token = r.token;
    user = $("username").value;
    sessionStorage.setItem("gatemq.token", token);
    sessionStorage.setItem("gatemq.user", user);
    $("password").value = "";
    start();
  } catch (e) {
    setMsg($("login-error"), e.message, "error");
  }
});

$("logout").addEventListener("click", () => logout(""));

// ---- pages ----

function route() {
  const h = location.hash || "#/overview";
  const page = h.startsWith("#/clients") ? "clients" : h.startsWith("#/mqtt") ? "mqtt"
    : h.startsWith("#/listeners") ? "listeners" : h.startsWith("#/bridges") ? "bridges" : "overview";
  for (const p of ["overview", "clients", "listeners", "bridges", "mqtt"]) show($("page-" + p), p === page);
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  $("nav-management").open = false;
  $("nav-management").querySelector("summary").classList.toggle("active", page === "mqtt");
  if (page === "mqtt") loadMqtt();
  refresh();
}

function refresh() {
  if (!token) return;
  if (!$("page-overview").hidden) refreshOverview().catch(() => {});
  if (!$("page-clients").hidden) refreshClients().catch(() => {});
  if (!$("page-listeners").hidden) refreshListeners().catch(() => {});
  if (!$("page-bridges").hidden) refreshBridges().catch(() => {});
}

function cell(tr, label, text, cls) {
  const td = document.createElement("td");
  td.dataset.label = label;
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

// Replace the rows of table `id` with one row per item; fill(tr, item) writes its cells.
function fillTable(id, items, fill) {
  const tb = $(id).tBodies[0];
  tb.replaceChildren();
  for (const it of items) {
    const tr = document.createElement("tr");
    fill(tr, it);
    tb.appendChild(tr);
  }
}

const KINDS = { tcp: "MQTT over TCP", ssl: "MQTT over TLS", ws: "MQTT over WebSocket", wss: "MQTT over WebSocket and TLS" };
const TLS_KINDS = new Set(["ssl", "wss"]);

function certText(l) {
  if (!TLS_KINDS.has(l.type)) return "-";
  return l.verify === "verify_peer" ? "verified" : "not asked";
}

// notAfter (RFC 3339) -> "2027-01-05 (in 30 days)"; marked when under 30 days.
function expiryCell(tr, label, iso, cls) {
  if (!iso) return cell(tr, label, "", cls);
  const days = Math.floor((Date.parse(iso) - Date.now()) / 86400000);
  const td = cell(tr, label, iso.slice(0, 10) + (days < 0 ? " (expired)" : " (" + days + " days)"), cls);
  if (days < 30) td.classList.add("warn");
  return td;
}

// ---- charts: a line chart drawn on a canvas, no library ----

const CHART_SPAN_MS = 15 * 60 * 1000;

function niceMax(v) {
  if (v <= 1) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// series: [{values: [[time ms, value]], color}]. Draws axes, three grid lines, the 15-minute
// time axis ending now, and each series as a line; records what it drew in data-points.
function drawChart(canvas, series, now) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(200, canvas.clientWidth), h = Math.max(120, canvas.clientHeight);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 44, right = 8, top = 8, bottom = 22;
  const pw = w - left - right, ph = h - top - bottom;
  let max = 0;
  for (const s of series) for (const [, v] of s.values) max = Math.max(max, v);
  max = niceMax(max);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#637083";
  g.strokeStyle = "#dde3ea";
  g.lineWidth = 1;
  g.textAlign = "right";
  g.textBaseline = "middle";
  for (let i = 0; i <= 2; i++) {
    const y = top + ph - (ph * i) / 2;
    g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(left + pw, y + 0.5); g.stroke();
    const v = (max * i) / 2;
    g.fillText(v >= 1000 ? (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k" : String(+v.toFixed(1)), left - 6, y);
  }
  g.textAlign = "center";
  g.textBaseline = "top";
  for (const m of [15, 10, 5, 0]) {
    g.textAlign = m === 15 ? "left" : m === 0 ? "right" : "center";
    g.fillText(m ? "-" + m + "m" : "now", left + pw - (pw * m) / 15, top + ph + 6);
  }
  const t0 = now - CHART_SPAN_MS;
  let points = 0;
  for (const s of series) {
    const pts = s.values.filter(([t]) => t >= t0);
    if (!pts.length) continue;
    g.strokeStyle = s.color;
    g.lineWidth = 2;
    g.lineJoin = "round";
    g.beginPath();
    pts.forEach(([t, v], i) => {
      const x = left + ((t - t0) / CHART_SPAN_MS) * pw, y = top + ph - (v / max) * ph;
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    if (pts.length === 1) g.arc(left + ((pts[0][0] - t0) / CHART_SPAN_MS) * pw, top + ph - (pts[0][1] / max) * ph, 2, 0, 7);
    g.stroke();
    points += pts.length;
  }
  canvas.dataset.points = String(points);
  canvas.dataset.max = String(max);
}

async function refreshCharts() {
  const hist = await api("GET", "monitor?latest=900");
  const now = hist.length ? Math.max(Date.now(), hist[hist.length - 1].time_stamp) : Date.now();
  drawChart($("chart-connections"), [{ values: hist.map((s) => [s.time_stamp, s.connections]), color: "#1b7f3b" }], now);
  drawChart($("chart-messages"), [
    { values: hist.map((s) => [s.time_stamp, s.received_msg_rate]), color: "#0b6bcb" },
    { values: hist.map((s) => [s.time_stamp, s.sent_msg_rate]), color: "#e07b00" },
  ], now);
}

async function refreshOverview() {
  refreshCharts().catch(() => {});
  const [m, ls] = await Promise.all([api("GET", "monitor_current"), api("GET", "listeners")]);
  $("ov-connections").textContent = m.live_connections;
  $("ov-in").textContent = m.received_msg_rate;
  $("ov-out").textContent = m.sent_msg_rate;
  $("ov-subs").textContent = m.subscriptions;
  $("ov-retained").textContent = m.retained_msg_count;
  fillTable("listeners", ls, (tr, l) => {
    cell(tr, "Listener", l.id, "key");
    cell(tr, "Type", KINDS[l.type] || l.type);
    cell(tr, "Bind", l.bind);
    cell(tr, "Client certificates", certText(l));
    cell(tr, "Connections", l.current_connections + " / " + l.max_connections);
  });
}

// "2026-12-06 07:00:52" in local time: shorter than toLocaleString, and it sorts.
function shortTime(iso) {
  const d = new Date(iso), p = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" +
    p(d.getMinutes()) + ":" + p(d.getSeconds());
}

const PROTO = { 3: "MQTT 3.1", 4: "MQTT 3.1.1", 5: "MQTT 5.0" };

async function refreshListeners() {
  const ls = await api("GET", "listeners");
  fillTable("listeners-full", ls, (tr, l) => {
    tr.dataset.listener = l.id;
    cell(tr, "Listener", l.id, "key");
    cell(tr, "Type", KINDS[l.type] || l.type);
    cell(tr, "Bind", l.bind);
    cell(tr, "Path", l.websocket ? l.websocket.mqtt_path : "");
    cell(tr, "Client certificates", certText(l));
    cell(tr, "Connections", l.current_connections + " / " + l.max_connections);
    expiryCell(tr, "Server certificate expires", l.server_cert_not_after || (l.certificate && l.certificate.not_after), "expiry");
  });
}

// Bridges (GET /api/v5/bridges): each bridge's link, its last error, its store-and-forward queue
// and its counters.
async function refreshBridges() {
  const bs = await api("GET", "bridges");
  show($("bridges-none"), bs.length === 0);
  fillTable("bridges", bs, (tr, b) => {
    tr.dataset.bridge = b.id;
    cell(tr, "Bridge", b.id, "key");
    cell(tr, "Server", b.server, "server");
    cell(tr, "Status", b.status, "status " + (b.status === "connected" ? "ok" : "warn"));
    cell(tr, "Last error", b.last_error || "", "error");
    cell(tr, "Queue", b.queue, "queue");
    cell(tr, "In flight", b.inflight, "inflight");
    cell(tr, "Sent", b.sent, "sent");
    cell(tr, "Received", b.received, "received");
    cell(tr, "Dropped", b.dropped, "dropped");
    cell(tr, "Refused", b.refused, "refused");
  });
}

// Sorting: a header click (or, on a phone, the select) sorts by that field; again reverses.
let sortKey = "connected_at", sortDir = 1;
let clientRows = [];

function sortValue(c, k) {
  const v = c[k];
  return v === undefined || v === null ? "" : typeof v === "number" ? v : String(v).toLowerCase();
}

function setSort(k) {
  if (k === sortKey) sortDir = -sortDir; else { sortKey = k; sortDir = 1; }
  $("client-sort").value = k;
  lastClients = null;
  renderClients();
}

for (const th of document.querySelectorAll("#clients th[data-sort]")) {
  th.addEventListener("click", () => setSort(th.dataset.sort));
}
$("client-sort").addEventListener("change", () => { sortKey = $("client-sort").value; sortDir = 1; lastClients = null; renderClients(); });

function attrsText(a) {
  if (!a) return "";
  return Object.keys(a).sort().map((k) => k + "=" + a[k]).join(", ");
}

async function refreshClients() {
  const r = await api("GET", "clients?limit=10000");
  clientRows = r.data;
  $("clients-updated").textContent = "Updated " + new Date().toLocaleTimeString();
  renderClients();
}

function renderClients() {
  // Search over what the table shows: client ID, username, address, certificate CN and DN,
  // attributes; then the chosen order.
  const f = $("client-filter").value.trim().toLowerCase();
  let rows = clientRows.filter((c) => !f || [c.clientid, c.username, c.ip_address, c.cn, c.dn, attrsText(c.client_attrs)]
    .some((v) => v && String(v).toLowerCase().includes(f)));
  rows = rows.slice().sort((a, b) => {
    const x = sortValue(a, sortKey), y = sortValue(b, sortKey);
    return (x < y ? -1 : x > y ? 1 : 0) * sortDir || (a.clientid < b.clientid ? -1 : 1);
  });
  for (const th of document.querySelectorAll("#clients th[data-sort]")) {
    if (th.dataset.sort === sortKey) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  // Rebuild only on a change, so a row is not replaced under a finger about to tap Kick.
  const sig = JSON.stringify([rows, sortKey, sortDir]);
  if (sig === lastClients) return;
  lastClients = sig;
  fillTable("clients", rows, (tr, c) => {
    tr.dataset.clientid = c.clientid;
    cell(tr, "Client ID", c.clientid, "key");
    cell(tr, "Username", c.username, "username");
    cell(tr, "IP address", c.ip_address + ":" + c.port);
    cell(tr, "Protocol", PROTO[c.proto_ver] || c.proto_ver);
    cell(tr, "Listener", c.listener, "listener");
    cell(tr, "Connected at", shortTime(c.connected_at));
    cell(tr, "Keepalive", c.keepalive + " s");
    cell(tr, "Certificate CN", c.cn === undefined ? "no certificate" : c.cn, "cn");
    cell(tr, "Certificate DN", c.dn === undefined ? "" : c.dn, "dn");
    const exp = expiryCell(tr, "Certificate expires", c.cert_not_after, "notafter");
    if (c.cert_serial) {
      // the serial under the date: what a CRL or gatemq-certs names the certificate by
      const s = document.createElement("small");
      s.className = "serial";
      s.textContent = "serial " + c.cert_serial;
      exp.appendChild(document.createElement("br"));
      exp.appendChild(s);
    }
    cell(tr, "Attributes", attrsText(c.client_attrs), "attrs");
    const td = cell(tr, "", "");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "kick danger";
    b.textContent = "Kick";
    b.addEventListener("click", () => kick(c.clientid));
    td.appendChild(b);
  });
  show($("clients-empty"), rows.length === 0);
  show($("clients"), rows.length > 0);
}

async function kick(clientid) {
  if (!confirm('Kick client "' + clientid + '"? It is disconnected now; it may connect again.')) return;
  try {
    await api("DELETE", "clients/" + encodeURIComponent(clientid));
    setMsg($("clients-msg"), 'Client "' + clientid + '" was kicked.', "ok");
  } catch (e) {
    setMsg($("clients-msg"), e.message, "error");
  }
  refreshClients().catch(() => {});
}

$("client-filter").addEventListener("input", renderClients);

// ---- Management / MQTT Settings / General ----

for (const id of ["peer_cert_as_username", "peer_cert_as_clientid"]) {
  for (const [v, label] of MODES) {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = label;
    $(id).appendChild(o);
  }
}

async function loadMqtt() {
  setMsg($("save-msg"), "");
  try {
    const m = await api("GET", "configs/mqtt");
    $("peer_cert_as_username").value = m.peer_cert_as_username;
    $("peer_cert_as_clientid").value = m.peer_cert_as_clientid;
    $("use_username_as_clientid").checked = !!m.use_username_as_clientid;
  } catch (e) {
    setMsg($("save-msg"), e.message, "error");
  }
}

$("mqtt-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const btn = $("save");
  btn.disabled = true;
  setMsg($("save-msg"), "Saving...");
  try {
    await api("PUT", "configs/mqtt", {
      peer_cert_as_username: $("peer_cert_as_username").value,
      peer_cert_as_clientid: $("peer_cert_as_clientid").value,
      use_username_as_clientid: $("use_username_as_clientid").checked,
    });
    setMsg($("save-msg"), "Saved. Clients that connect from now on use these settings; connected clients keep theirs.", "ok");
  } catch (e) {
    setMsg($("save-msg"), "Not saved: " + e.message, "error");
  } finally {
    btn.disabled = false;
  }
});

// ---- start ----

function start() {
  show($("login"), false);
  show($("app"), true);
  $("who").textContent = user;
  route();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

window.addEventListener("hashchange", () => { if (token) route(); });
// The Management menu closes when a tap lands anywhere else.
document.addEventListener("click", (ev) => {
  const m = $("nav-management");
  if (m.open && !m.contains(ev.target)) m.open = false;
});
if (token) start(); else logout("");
