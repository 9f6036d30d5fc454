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
  const page = h.startsWith("#/clients") ? "clients" : h.startsWith("#/mqtt") ? "mqtt" : "overview";
  for (const p of ["overview", "clients", "mqtt"]) show($("page-" + p), p === page);
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
}

function cell(tr, label, text, cls) {
  const td = document.createElement("td");
  td.dataset.label = label;
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

async function refreshOverview() {
  const [m, ls] = await Promise.all([api("GET", "monitor_current"), api("GET", "listeners")]);
  $("ov-connections").textContent = m.live_connections;
  $("ov-in").textContent = m.received_msg_rate;
  $("ov-out").textContent = m.sent_msg_rate;
  $("ov-subs").textContent = m.subscriptions;
  $("ov-retained").textContent = m.retained_msg_count;
  const tb = $("listeners").tBodies[0];
  tb.replaceChildren();
  for (const l of ls) {
    const tr = document.createElement("tr");
    cell(tr, "Listener", l.id, "key");
    cell(tr, "Type", l.type === "ssl" ? "MQTT over TLS" : "MQTT over TCP");
    cell(tr, "Bind", l.bind);
    cell(tr, "Client certificates", l.type === "ssl" ? (l.verify === "verify_peer" ? "verified" : "not asked") : "-");
    cell(tr, "Connections", l.current_connections + " / " + l.max_connections);
    tb.appendChild(tr);
  }
}

const PROTO = { 3: "MQTT 3.1", 4: "MQTT 3.1.1", 5: "MQTT 5.0" };

async function refreshClients() {
  const f = $("client-filter").value.trim();
  const q = "clients?limit=1000" + (f ? "&like_clientid=" + encodeURIComponent(f) : "");
  let r = await api("GET", q);
  let rows = r.data;
  if (f) {
    // The API filters one field per query; show client ID and username matches together.
    const byUser = await api("GET", "clients?limit=1000&like_username=" + encodeURIComponent(f));
    const seen = new Set(rows.map((c) => c.clientid));
    rows = rows.concat(byUser.data.filter((c) => !seen.has(c.clientid)));
  }
  $("clients-updated").textContent = "Updated " + new Date().toLocaleTimeString();
  // Rebuild only on a change, so a row is not replaced under a finger about to tap Kick.
  const sig = JSON.stringify(rows);
  if (sig === lastClients) return;
  lastClients = sig;
  const tb = $("clients").tBodies[0];
  tb.replaceChildren();
  for (const c of rows) {
    const tr = document.createElement("tr");
    tr.dataset.clientid = c.clientid;
    cell(tr, "Client ID", c.clientid, "key");
    cell(tr, "Username", c.username, "username");
    cell(tr, "IP address", c.ip_address + ":" + c.port);
    cell(tr, "Protocol", PROTO[c.proto_ver] || c.proto_ver);
    cell(tr, "Connected at", new Date(c.connected_at).toLocaleString());
    cell(tr, "Keepalive", c.keepalive + " s");
    cell(tr, "Certificate CN", c.cn === undefined ? "no certificate" : c.cn, "cn");
    cell(tr, "Certificate DN", c.dn === undefined ? "" : c.dn, "dn");
    const td = cell(tr, "", "");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "kick danger";
    b.textContent = "Kick";
    b.addEventListener("click", () => kick(c.clientid));
    td.appendChild(b);
    tb.appendChild(tr);
  }
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

$("client-filter").addEventListener("input", () => refreshClients().catch(() => {}));

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
