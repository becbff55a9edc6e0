// syncforge operator console. Plain JavaScript, no build step, no external resource.
// The admin token lives in sessionStorage only and travels as an Authorization header.
"use strict";

// Errors of the page itself, read by the browser tests.
window.__consoleErrors = [];
window.addEventListener("error", (e) => window.__consoleErrors.push(String(e.message || e)));
window.addEventListener("unhandledrejection", (e) => window.__consoleErrors.push(String(e.reason)));

(() => {
  const TOKEN_KEY = "syncforge.console.token";
  const POLL_MS = 5000;
  const WS_RETRY_MS = 30000;
  const PANELS = ["now", "devices", "device", "conflicts", "alerts", "policies"];
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  class HttpError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const state = {
    panel: "now",
    deviceId: null,
    devices: [],
    sort: { key: "health_score", dir: 1 },
    dashboard: null,
    connection: "connecting",
    ws: null,
    wsLive: false,
    pollTimer: null,
    wsRetryTimer: null,
    refreshTimer: null,
    refreshing: false,
    again: false,
    editing: new Set(),
  };

  // ---------- HTTP ----------
  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json", Authorization: "Bearer " + (options.token || token() || "") };
    const init = { method: options.method || "GET", headers, cache: "no-store" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      throw new HttpError(0, "network", "The server cannot be reached.");
    }
    let body = null;
    const text = await response.text();
    if (text) {
      try {
        body = JSON.parse(text);
      } catch (_) {
        body = null;
      }
    }
    if (!response.ok) {
      const detail = body && body.error ? body.error : {};
      throw new HttpError(response.status, detail.code || "http_" + response.status, detail.message || response.statusText);
    }
    return body;
  }

  function describe(err) {
    if (!(err instanceof HttpError)) return String(err && err.message ? err.message : err);
    if (err.status === 0) return "The server cannot be reached.";
    if (err.status === 401) return "This token is not valid (unknown, expired or revoked).";
    if (err.status === 403) return "This token is not an admin token: the console needs the admin role.";
    return err.message + " (" + err.status + ")";
  }

  // ---------- formatting ----------
  const fmt = {
    int: (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US")),
    num: (n, d = 1) => (n === null || n === undefined ? "–" : Number(n).toFixed(d)),
    pct: (n) => (n === null || n === undefined ? "–" : Number(n).toFixed(1) + " %"),
    ms: (n) => (n === null || n === undefined ? "–" : Number(n).toFixed(1) + " ms"),
    time: (t) => (t ? new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "never"),
    ago(t) {
      if (!t) return "never";
      const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
      if (s < 60) return Math.round(s) + " s ago";
      if (s < 3600) return Math.round(s / 60) + " min ago";
      if (s < 86400) return Math.round(s / 3600) + " h ago";
      return Math.round(s / 86400) + " d ago";
    },
  };

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setState(name, text, isError = false) {
    const node = $(`.state[data-for="${name}"]`);
    if (!node) return;
    node.textContent = text || "";
    node.classList.toggle("is-error", Boolean(isError));
  }

  // A sparkline of `values` (null: no data in that slot) as inline SVG.
  function sparkline(values, label) {
    const ns = "http://www.w3.org/2000/svg";
    const w = 200;
    const h = 40;
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "spark");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    const known = values.filter((v) => v !== null && v !== undefined);
    if (known.length === 0) {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", "4");
      t.setAttribute("y", "24");
      t.setAttribute("class", "empty");
      t.textContent = "no data";
      svg.append(t);
      return svg;
    }
    const max = Math.max(...known);
    const min = Math.min(0, ...known);
    const span = max - min || 1;
    const step = values.length > 1 ? w / (values.length - 1) : w;
    const points = [];
    values.forEach((v, i) => {
      const y = v === null || v === undefined ? 0 : v;
      points.push(`${(i * step).toFixed(1)},${(h - 2 - ((y - min) / span) * (h - 4)).toFixed(1)}`);
    });
    const area = document.createElementNS(ns, "polygon");
    area.setAttribute("class", "area");
    area.setAttribute("points", `0,${h} ${points.join(" ")} ${((values.length - 1) * step).toFixed(1)},${h}`);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.join(" "));
    svg.append(area, line);
    return svg;
  }

  function tile(id, title, value, display, values, note) {
    return el(
      "article",
      { class: "tile", id: "tile-" + id, "aria-labelledby": "tile-" + id + "-title" },
      el("h4", { id: "tile-" + id + "-title", text: title }),
      el("div", { class: "value", "data-value": value === null || value === undefined ? "" : String(value), text: display }),
      sparkline(values, title + ", last hour"),
      note ? el("div", { class: "note", text: note }) : null,
    );
  }

  // ---------- panels ----------
  async function loadNow() {
    setState("now", state.dashboard ? "" : "Loading…");
    const [activity, dashboard] = await Promise.all([api("/api/v1/sync/activity?minutes=60"), loadDashboard()]);
    const s = activity.summary;
    const b = activity.buckets;
    $("#now-window").textContent = `last ${activity.minutes} min, updated ${fmt.time(activity.to)}`;
    const tiles = $("#tiles");
    tiles.replaceChildren(
      tile("active-devices", "Devices active (15 min)", activity.active_devices_15m, fmt.int(activity.active_devices_15m),
        b.map((x) => x.devices), "distinct devices per minute"),
      tile("syncs-per-minute", "Syncs per minute", s.syncs_per_minute, fmt.num(s.syncs_per_minute, 2),
        b.map((x) => x.syncs), `${fmt.int(s.syncs)} syncs in ${activity.minutes} min`),
      tile("success-rate", "Success rate", s.success_rate_pct, fmt.pct(s.success_rate_pct),
        b.map((x) => x.success_rate_pct), `${fmt.int(s.failed)} failed`),
      tile("conflict-rate", "Conflict rate", s.conflict_rate_pct, fmt.pct(s.conflict_rate_pct),
        b.map((x) => x.conflict_rate_pct), `${fmt.int(s.conflicts)} conflicts / ${fmt.int(s.changes)} changes`),
      tile("p95", "p95 sync duration", s.p95_sync_duration_ms, fmt.ms(s.p95_sync_duration_ms),
        b.map((x) => x.p95_sync_duration_ms), "server-side, per minute"),
    );
    setState("now", s.syncs === 0 ? "No syncs in the last hour." : "");
    const trend = dashboard.trend_7days || [];
    const trendTiles = $("#trend");
    if (trend.length === 0) {
      setState("trend", "No snapshots in the last 7 days yet (the server takes one every hour, or use Alerts › Take a snapshot now).");
      trendTiles.replaceChildren();
    } else {
      setState("trend", `${trend.length} snapshot(s), oldest first.`);
      const last = trend[trend.length - 1];
      const t = (id, title, key, show) =>
        tile("trend-" + id, title, last[key], show(last[key]), trend.map((x) => x[key]), "latest of 7 days");
      trendTiles.replaceChildren(
        t("syncs", "Sync requests", "total_sync_requests", fmt.int),
        t("devices", "Devices", "unique_devices", fmt.int),
        t("success", "Success rate", "success_rate_pct", fmt.pct),
        t("conflict", "Conflict rate", "conflict_rate_pct", fmt.pct),
        t("p95", "p95 sync duration", "p95_sync_duration_ms", fmt.ms),
      );
    }
  }

  async function loadDashboard() {
    const dashboard = await api("/api/sync/dashboard/");
    state.dashboard = dashboard;
    return dashboard;
  }

  function scoreClass(score) {
    return score < 50 ? "bad" : score < 70 ? "warn" : "good";
  }

  async function loadDevices() {
    if (state.devices.length === 0) setState("devices", "Loading…");
    const list = await api("/api/v1/sync/devices");
    state.devices = list.devices;
    state.healthThreshold = list.health_threshold;
    renderDevices();
  }

  function renderDevices() {
    const filter = $("#device-filter").value.trim().toLowerCase();
    const unhealthyOnly = $("#device-unhealthy").checked;
    const threshold = state.healthThreshold || 70;
    const { key, dir } = state.sort;
    const rows = state.devices
      .filter((d) => !unhealthyOnly || d.health_score < threshold)
      .filter((d) => !filter || [d.device_id, d.user_id, d.network_type || ""].some((v) => v.toLowerCase().includes(filter)))
      .sort((a, b) => {
        const x = a[key];
        const y = b[key];
        if (x === y) return a.device_id < b.device_id ? -1 : 1;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * dir;
      });
    $$("#device-table th").forEach((th) => {
      const button = $("button", th);
      th.setAttribute("aria-sort", button.dataset.sort === key ? (dir === 1 ? "ascending" : "descending") : "none");
    });
    $("#device-table tbody").replaceChildren(
      ...rows.map((d) =>
        el(
          "tr",
          { "data-device": d.device_id },
          el("td", {}, el("a", { href: "#device/" + encodeURIComponent(d.device_id), text: d.device_id })),
          el("td", { text: d.user_id }),
          el("td", { class: "num" }, el("span", { class: "score " + scoreClass(d.health_score), text: fmt.num(d.health_score, 0) })),
          el("td", { title: fmt.time(d.last_sync_at), text: fmt.ago(d.last_sync_at) }),
          el("td", { class: "num", text: fmt.int(d.total_syncs) }),
          el("td", { class: "num", text: fmt.int(d.failed_syncs_count) }),
          el("td", { class: "num", text: fmt.int(d.conflicts_encountered) }),
          el("td", { class: "num", text: fmt.int(d.clock_skew_ms) + " ms" }),
          el("td", { text: d.network_type || "–" }),
        ),
      ),
    );
    if (state.devices.length === 0) setState("devices", "No device has synced yet.");
    else if (rows.length === 0) setState("devices", "No device matches the filter.");
    else setState("devices", `${rows.length} of ${state.devices.length} device(s).`);
  }

  async function loadDevice() {
    const id = state.deviceId;
    $("#device-title").textContent = "Device " + id;
    setState("device", "Loading…");
    const enc = encodeURIComponent(id);
    const [health, recent] = await Promise.all([
      api("/api/sync/device-health/?device_id=" + enc),
      api("/api/v1/sync/devices/" + enc + "/syncs?limit=50"),
    ]);
    const fact = (label, value) => el("div", {}, el("dt", { text: label }), el("dd", { text: value }));
    $("#device-health").replaceChildren(
      fact("Health score", fmt.num(health.health_score, 0)),
      fact("Last sync", fmt.time(health.last_sync_at)),
      fact("Syncs", fmt.int(health.total_syncs)),
      fact("Failures", fmt.int(health.failed_syncs_count)),
      fact("Conflicts", fmt.int(health.conflicts_encountered)),
      fact("Average duration", fmt.ms(health.avg_sync_duration_ms)),
      fact("Clock skew", fmt.int(health.clock_skew_ms) + " ms"),
      fact("Network", health.network_type || "–"),
    );
    $("#device-syncs tbody").replaceChildren(
      ...recent.syncs.map((s) =>
        el(
          "tr",
          {},
          el("td", { text: fmt.time(s.at) }),
          el("td", { text: s.kind }),
          el("td", { class: s.success ? "" : "fail", text: s.success ? "ok" : "failed" }),
          el("td", { class: "num", text: fmt.ms(s.duration_ms) }),
          el("td", { class: "num", text: fmt.int(s.changes) }),
          el("td", { class: "num", text: fmt.int(s.conflicts) }),
          el("td", { class: "num", text: fmt.int(s.bytes_sent) }),
        ),
      ),
    );
    setState("device", recent.syncs.length === 0 ? "No sync recorded for this device." : "");
  }

  function fieldText(v) {
    return v === undefined ? "(absent)" : JSON.stringify(v, null, 1);
  }

  function conflictCard(c) {
    const server = (c.server_state && c.server_state.data) || {};
    const client = (c.client_state && c.client_state.data) || {};
    const fields = Array.from(new Set([...Object.keys(server), ...Object.keys(client)])).sort();
    const rows = fields.map((f) => {
      const differs = JSON.stringify(server[f]) !== JSON.stringify(client[f]);
      return el(
        "tr",
        { class: differs ? "differs" : null, "data-field": f },
        el("th", { scope: "row" }, f, differs ? el("span", { class: "sr-only", text: " (differs)" }) : null),
        el("td", { text: fieldText(server[f]) }),
        el("td", { text: fieldText(client[f]) }),
      );
    });
    const deleted = (s) => (s && s.deleted ? " (deleted)" : "");
    const status = el("p", { class: "state", "aria-live": "polite" });
    const editor = el("textarea", {
      class: "editor",
      "aria-label": "Edited data for record " + c.mobile_id + " as JSON",
      hidden: true,
    });
    editor.value = JSON.stringify(Object.assign({}, server, client), null, 2);
    const buttons = [];
    const resolve = async (choose, data) => {
      buttons.forEach((b) => (b.disabled = true));
      status.classList.remove("is-error");
      status.textContent = "Resolving…";
      try {
        const body = { choose };
        if (data !== undefined) body.data = data;
        const r = await api(`/api/v1/sync/conflicts/${encodeURIComponent(c.id)}/resolve`, { method: "POST", body });
        state.editing.delete(c.id);
        status.textContent = `Resolved: version ${r.version}.`;
        scheduleRefresh(0);
      } catch (err) {
        status.classList.add("is-error");
        status.textContent = describe(err);
        buttons.forEach((b) => (b.disabled = false));
      }
    };
    const editButton = el("button", {
      type: "button",
      class: "secondary",
      "aria-expanded": "false",
      onclick: () => {
        editor.hidden = !editor.hidden;
        editButton.setAttribute("aria-expanded", String(!editor.hidden));
        saveButton.hidden = editor.hidden;
        if (editor.hidden) state.editing.delete(c.id);
        else {
          state.editing.add(c.id);
          editor.focus();
        }
      },
      text: "Edit…",
    });
    const saveButton = el("button", {
      type: "button",
      hidden: true,
      onclick: () => {
        let data;
        try {
          data = JSON.parse(editor.value);
        } catch (e) {
          status.classList.add("is-error");
          status.textContent = "The edited data is not valid JSON: " + e.message;
          return;
        }
        resolve("custom", data);
      },
      text: "Resolve with edited data",
    });
    buttons.push(
      el("button", { type: "button", "data-choose": "server", onclick: () => resolve("server"), text: "Keep server" }),
      el("button", { type: "button", "data-choose": "client", onclick: () => resolve("client"), text: "Take client" }),
      editButton,
      saveButton,
    );
    return el(
      "article",
      { class: "card conflict", "data-conflict": c.id, "aria-labelledby": "conflict-" + c.id },
      el(
        "header",
        {},
        el("h3", { id: "conflict-" + c.id, text: `${c.domain} ${c.mobile_id}` }),
        el("span", {
          class: "meta",
          text: `server v${c.server_version}${deleted(c.server_state)} · client based on v${c.client_base_version}${deleted(c.client_state)} · device ${c.device_id} (${c.user_id}) · ${fmt.time(c.created_at)}`,
        }),
      ),
      el(
        "div",
        { class: "scroll" },
        el(
          "table",
          { class: "data" },
          el("caption", { class: "sr-only", text: "Server and client states; differing fields are marked" }),
          el("thead", {}, el("tr", {}, el("th", { text: "Field" }), el("th", { text: "Server" }), el("th", { text: "Client" }))),
          el("tbody", {}, rows),
        ),
      ),
      el("div", { class: "actions", role: "group", "aria-label": "Resolve conflict " + c.mobile_id }, buttons),
      editor,
      status,
    );
  }

  async function loadConflicts() {
    if (!$("#conflict-list").children.length) setState("conflicts", "Loading…");
    const [conflicts, dashboard] = await Promise.all([api("/api/v1/sync/conflicts?status=pending"), loadDashboard()]);
    const list = $("#conflict-list");
    // Keep a card someone is editing; replace the rest.
    const keep = new Map($$(".conflict", list).filter((n) => state.editing.has(n.dataset.conflict)).map((n) => [n.dataset.conflict, n]));
    list.replaceChildren(...conflicts.map((c) => keep.get(c.id) || conflictCard(c)));
    setState("conflicts", conflicts.length === 0 ? "No conflict is waiting for a person." : `${conflicts.length} pending conflict(s).`);
    renderBadge(conflicts.length);
    const hotspots = dashboard.conflict_hotspots || [];
    const max = Math.max(1, ...hotspots.map((h) => h.conflict_count));
    $("#hotspots").replaceChildren(
      ...hotspots.map((h) =>
        el(
          "li",
          {},
          el("span", { text: h.domain }),
          el("meter", { min: "0", max: String(max), value: String(h.conflict_count), "aria-label": `${h.domain}: ${h.conflict_count} conflicts` }),
          el("span", { class: "num", text: fmt.int(h.conflict_count) }),
        ),
      ),
    );
    setState("hotspots", hotspots.length === 0 ? "No conflicts in the last 7 days." : "");
  }

  function renderBadge(n) {
    const badge = $("#conflict-badge");
    badge.hidden = !n;
    badge.textContent = n ? String(n) : "";
    badge.setAttribute("aria-label", `${n} pending`);
  }

  async function loadAlerts() {
    if (!state.dashboard) setState("alerts", "Loading…");
    const dashboard = await loadDashboard();
    const alerts = dashboard.alerts || [];
    $("#alert-list").replaceChildren(
      ...alerts.map((a) =>
        el(
          "li",
          { class: a.severity, "data-rule": a.rule },
          el("strong", { text: `${a.severity.toUpperCase()} · ${a.rule}` }),
          el("div", { text: a.message }),
          el("div", { class: "meta", text: `value ${fmt.num(a.value, 2)}, threshold ${fmt.num(a.threshold, 2)} · ${fmt.time(a.created_at)}` }),
        ),
      ),
    );
    setState("alerts", alerts.length === 0 ? "No alerts in the last 7 days." : `${alerts.length} alert(s), newest first.`);
  }

  const POLICIES = ["client_wins", "server_wins", "most_recent_wins", "preserve_escalation", "field_merge", "manual"];

  async function loadPolicies() {
    const tbody = $("#policy-table tbody");
    // Do not overwrite a row being edited.
    if (tbody.querySelector("[data-dirty]")) return;
    if (!tbody.children.length) setState("policies", "Loading…");
    const policies = await api("/api/v1/sync/policies");
    tbody.replaceChildren(
      ...policies.map((p) => {
        const select = el("select", { "aria-label": `Policy for ${p.domain}` }, POLICIES.map((name) => el("option", { value: name, text: name })));
        select.value = p.configured_policy;
        const auto = el("input", { type: "checkbox", "aria-label": `Auto-resolve ${p.domain}` });
        auto.checked = p.auto_resolve;
        const notify = el("input", { type: "checkbox", "aria-label": `Notify on ${p.domain} conflicts` });
        notify.checked = p.notify_on_conflict;
        const status = el("span", { class: "state", "aria-live": "polite" });
        const row = el("tr", { "data-domain": p.domain });
        const dirty = () => row.setAttribute("data-dirty", "");
        [select, auto, notify].forEach((c) => c.addEventListener("change", dirty));
        const save = el("button", {
          type: "button",
          "aria-label": `Save policy of ${p.domain}`,
          text: "Save",
          onclick: async () => {
            save.disabled = true;
            status.classList.remove("is-error");
            status.textContent = "Saving…";
            try {
              await api("/api/v1/sync/policies/" + encodeURIComponent(p.domain), {
                method: "PUT",
                body: { policy: select.value, auto_resolve: auto.checked, notify_on_conflict: notify.checked },
              });
              row.removeAttribute("data-dirty");
              await loadPolicies();
            } catch (err) {
              status.classList.add("is-error");
              status.textContent = describe(err);
              save.disabled = false;
            }
          },
        });
        row.append(
          el("th", { scope: "row", text: p.domain }),
          el("td", { text: p.policy }),
          el("td", {}, select),
          el("td", {}, auto),
          el("td", {}, notify),
          el("td", { text: p.source }),
          el("td", {}, save, " ", status),
        );
        return row;
      }),
    );
    setState("policies", policies.length === 0 ? "No domains." : "");
  }

  const LOADERS = { now: loadNow, devices: loadDevices, device: loadDevice, conflicts: loadConflicts, alerts: loadAlerts, policies: loadPolicies };

  // ---------- refresh, polling and the live stream ----------
  function showBanner(text) {
    const banner = $("#banner");
    banner.hidden = !text;
    banner.textContent = text || "";
  }

  function setConnection(name) {
    state.connection = name;
    const live = $("#live");
    live.dataset.state = name;
    live.textContent = name;
    live.setAttribute("aria-label", "Connection: " + name);
  }

  async function refresh() {
    if (!token()) return;
    if (state.refreshing) {
      // A refresh is under way (maybe of another panel): run again when it ends.
      state.again = true;
      return;
    }
    state.refreshing = true;
    const panel = state.panel;
    try {
      await LOADERS[panel]();
      showBanner("");
      if (state.connection === "reconnecting" || state.connection === "connecting") setConnection(state.wsLive ? "live" : "polling");
    } catch (err) {
      if (err instanceof HttpError && (err.status === 401 || err.status === 403)) {
        signOut(describe(err));
      } else if (err instanceof HttpError && err.status === 0) {
        setConnection("reconnecting");
        showBanner("Connection to the server lost; retrying every " + POLL_MS / 1000 + " s…");
      } else {
        setState(panel, describe(err), true);
      }
    } finally {
      state.refreshing = false;
      if (state.again) {
        state.again = false;
        scheduleRefresh(0);
      }
    }
  }

  function scheduleRefresh(delay = 250) {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refresh, delay);
  }

  function startPolling() {
    stopPolling();
    state.pollTimer = setInterval(refresh, POLL_MS);
  }

  function stopPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  function connectLive() {
    clearTimeout(state.wsRetryTimer);
    if (!token() || !("WebSocket" in window)) {
      setConnection("polling");
      return;
    }
    let opened = false;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/sync/ws";
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (_) {
      setConnection("polling");
      return;
    }
    state.ws = ws;
    ws.onopen = () => {
      opened = true;
      ws.send(JSON.stringify({ type: "auth", token: token() }));
      ws.send(JSON.stringify({ type: "subscribe", cursor: null }));
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (!state.wsLive) {
        state.wsLive = true;
        setConnection("live");
        stopPolling();
      }
      if (message.type === "changes" || message.type === "conflict" || message.type === "alert") scheduleRefresh();
      else if (message.type === "resync_required") ws.send(JSON.stringify({ type: "subscribe", cursor: null }));
      else if (message.type === "error") showBanner("Live stream: " + ((message.error && message.error.message) || "error"));
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      const wasLive = state.wsLive;
      state.wsLive = false;
      if (!token()) return;
      // Until the live stream answers, poll; try the stream again later.
      if (state.connection !== "reconnecting") setConnection(wasLive ? "reconnecting" : "polling");
      if (!state.pollTimer) startPolling();
      if (wasLive) scheduleRefresh(0);
      state.wsRetryTimer = setTimeout(connectLive, wasLive || opened ? 2000 : WS_RETRY_MS);
    };
    ws.onerror = () => {};
  }

  function stopLive() {
    clearTimeout(state.wsRetryTimer);
    stopPolling();
    clearTimeout(state.refreshTimer);
    const ws = state.ws;
    state.ws = null;
    state.wsLive = false;
    if (ws) ws.close();
  }

  // ---------- navigation, sign-in, sign-out ----------
  function route() {
    const hash = decodeURIComponent(location.hash.replace(/^#/, ""));
    if (hash.startsWith("device/")) {
      state.panel = "device";
      state.deviceId = hash.slice("device/".length);
    } else {
      state.panel = PANELS.includes(hash) && hash !== "device" ? hash : "now";
    }
    for (const name of PANELS) $("#panel-" + name).hidden = name !== state.panel;
    const tab = state.panel === "device" ? "devices" : state.panel;
    $$(".tabs a").forEach((a) => {
      if (a.dataset.panel === tab) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    if (token()) scheduleRefresh(0);
  }

  function showApp() {
    $("#signin").hidden = true;
    $("#app").hidden = false;
    setConnection("connecting");
    route();
    startPolling();
    connectLive();
  }

  function signOut(reason) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopLive();
    state.devices = [];
    state.dashboard = null;
    $("#app").hidden = true;
    $("#signin").hidden = false;
    $("#signin-error").textContent = reason || "";
    $("#token-input").value = "";
    $("#token-input").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $("#token-input");
    const candidate = input.value.trim();
    const error = $("#signin-error");
    const button = $("#signin-button");
    if (!candidate) {
      error.textContent = "Enter an admin token.";
      return;
    }
    error.textContent = "";
    button.disabled = true;
    button.textContent = "Signing in…";
    try {
      // The dashboard needs the admin role: it tells a valid admin token apart.
      await api("/api/sync/dashboard/", { token: candidate });
      sessionStorage.setItem(TOKEN_KEY, candidate);
      input.value = "";
      showApp();
    } catch (err) {
      error.textContent = describe(err);
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
    }
  }

  function init() {
    $("#signin-form").addEventListener("submit", signIn);
    $("#signout").addEventListener("click", () => signOut("Signed out."));
    $("#device-filter").addEventListener("input", renderDevices);
    $("#device-unhealthy").addEventListener("change", renderDevices);
    $$("#device-table th button").forEach((button) =>
      button.addEventListener("click", () => {
        const key = button.dataset.sort;
        state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
        renderDevices();
      }),
    );
    $("#snapshot-now").addEventListener("click", async (e) => {
      const button = e.currentTarget;
      button.disabled = true;
      try {
        await api("/api/sync/snapshot/create/", { method: "POST", body: { time_window_hours: 1 } });
        setState("alerts", "Snapshot taken.");
        scheduleRefresh(0);
      } catch (err) {
        setState("alerts", describe(err), true);
      } finally {
        button.disabled = false;
      }
    });
    window.addEventListener("hashchange", route);
    window.addEventListener("online", () => scheduleRefresh(0));
    if (token()) showApp();
    else $("#token-input").focus();
  }

  init();
})();
