/* Live alerts panel: SSE stream -> new rows on top, visual + optional sound cue, j/k/c/f/u keys.
   Alerts of one camera and moment sit under one incident row (incidents.js). */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("page-config").textContent);
  var msg = cfg.messages;
  var tbody = document.getElementById("alert-rows");
  var empty = document.getElementById("alerts-empty");
  var statusEl = document.getElementById("live-status");
  var soundToggle = document.getElementById("sound-toggle");
  var baseTitle = document.title;
  var unseen = 0;
  var selected = null;

  soundToggle.checked = localStorage.getItem("sg_sound") === "1";
  soundToggle.addEventListener("change", function () {
    localStorage.setItem("sg_sound", soundToggle.checked ? "1" : "0");
    if (soundToggle.checked) beep();
  });

  function t(key) { return msg[key] || key; }
  var incidents = new SG.Incidents(tbody, cfg.incident_window_s, t);

  function setLive(state) {
    statusEl.setAttribute("data-state", state);
    statusEl.querySelector("[data-label]").textContent =
      state === "open" ? t("alerts.live") : state === "error" ? t("alerts.disconnected") : t("alerts.connecting");
  }

  var audioCtx = null;
  function beep() {
    try {
      audioCtx = audioCtx || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audioCtx.createOscillator(), gain = audioCtx.createGain();
      osc.type = "sine"; osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, audioCtx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.25, audioCtx.currentTime + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, audioCtx.currentTime + 0.35);
      osc.connect(gain).connect(audioCtx.destination);
      osc.start(); osc.stop(audioCtx.currentTime + 0.4);
    } catch (e) { /* audio not allowed yet: the visual cue still shows */ }
  }

  // Does a live violation belong on this page (page 1, same filters)?
  function matches(v) {
    var f = cfg.filters;
    if (cfg.page !== 1) return false;
    if (f.site && String(v.site_id) !== String(f.site)) return false;
    if (f.camera && v.camera_id !== f.camera) return false;
    if (f.kind && v.kind !== f.kind) return false;
    if (f.status && v.status !== f.status) return false;
    if (cfg.until_iso && new Date(v.started_at) > new Date(cfg.until_iso)) return false;
    if (cfg.since_iso && new Date(v.started_at) < new Date(cfg.since_iso)) return false;
    return true;
  }

  function field(row, name) { return row.querySelector('[data-field="' + name + '"]'); }

  function setStatus(row, status) {
    var el = field(row, "status") || row.querySelector(".c-status .badge");
    el.className = "badge status-" + status;
    el.textContent = t("status." + status);
    el.setAttribute("data-field", "status");
  }

  function renderRow(v) {
    var row = document.getElementById("row-template").content.firstElementChild.cloneNode(true);
    var href = "/alerts/" + encodeURIComponent(v.event_id);
    row.setAttribute("data-id", v.event_id);
    row.setAttribute("data-href", href);
    row.setAttribute("data-camera", v.camera_id);
    row.setAttribute("data-started", v.started_at);
    var thumb = field(row, "thumb");
    if (v.snapshot_url) {
      thumb.src = v.snapshot_url;
      thumb.alt = t("common.snapshot") + " " + v.camera_id;
    } else {
      var div = document.createElement("div");
      div.className = "thumb empty"; div.textContent = t("common.no_snapshot");
      thumb.replaceWith(div);
    }
    field(row, "open").href = href;  // the time opens the alert; the camera name, the camera
    var time = field(row, "time");
    time.setAttribute("datetime", v.started_at);
    time.textContent = SG.formatTime(v.started_at);
    field(row, "ago").textContent = t("status.new");
    var cam = field(row, "camera");
    cam.href = "/cameras#camera-" + encodeURIComponent(v.camera_id);  // the camera, not the alert
    cam.textContent = v.camera_name || cfg.camera_names[v.camera_id] || v.camera_id;
    field(row, "site").textContent = v.site_name || cfg.site_names[v.site_id] || "";
    field(row, "zone").textContent = v.zone === "site" ? t("zone.site") : (v.zone || "—");
    var kind = field(row, "kind");
    kind.className = "badge kind-" + v.kind; kind.textContent = t("kind." + v.kind);
    field(row, "duration").textContent = SG.formatDuration(v.duration_s);
    var pct = Math.round((v.confidence || 0) * 100);
    field(row, "confbar").style.width = pct + "%";
    field(row, "conf").textContent = pct + "%";
    field(row, "model").textContent = v.model_version || "—";
    setStatus(row, v.status || "unreviewed");
    return row;
  }

  function bump(id, delta) {
    var el = document.getElementById(id);
    if (el && /^\d+$/.test(el.textContent.trim())) el.textContent = String(Number(el.textContent) + delta);
  }

  // "Unreviewed today" drops once per alert, whether the stream's review event or the answer
  // to this page's own review comes first.
  var counted = {};
  function reviewed(id) {
    if (counted[id]) return;
    counted[id] = true;
    bump("kpi-open", -1);
  }

  function findRow(id) {
    return document.querySelector('#alert-rows tr[data-id="' + CSS.escape(id) + '"]');
  }

  // The server renders the row (same markup, names and time zone as the page); the
  // client-side template is only a fallback when that request fails.
  function fetchRow(v) {
    return fetch("/alerts/_row/" + encodeURIComponent(v.event_id), { credentials: "same-origin" })
      .then(function (resp) {
        if (!resp.ok) throw new Error(String(resp.status));
        return resp.text();
      })
      .then(function (html) {
        var holder = document.createElement("tbody");
        holder.innerHTML = html.trim();
        return holder.firstElementChild;
      })
      .catch(function () { return renderRow(v); });
  }

  function onViolation(v) {
    if (findRow(v.event_id)) return;
    bump("kpi-today", 1); bump("kpi-open", 1);
    if (!matches(v)) return;
    // Show it at once from the stream's data, then swap in the server-rendered row (model
    // version, reviewer, names exactly as on a reload) when that arrives.
    var row = renderRow(v);
    incidents.place(row);
    empty.hidden = true;
    incidents.trim(cfg.page_size);
    if (document.hidden) { unseen += 1; document.title = "(" + unseen + ") " + baseTitle; }
    if (soundToggle.checked) beep();
    onUpdate(v, true);
  }

  function onUpdate(v, isNew) {
    var row = findRow(v.event_id);
    if (!row) return;
    var before = row.querySelector(".c-status .badge");
    if (before && before.classList.contains("status-unreviewed") && v.status && v.status !== "unreviewed") {
      reviewed(v.event_id);
    }
    fetchRow(v).then(function (fresh) {
      row = findRow(v.event_id) || row;
      if (isNew) fresh.classList.add("fresh");
      var wasSelected = row === selected;
      fresh.setAttribute("aria-selected", wasSelected ? "true" : "false");
      incidents.adopt(fresh, row);
      row.replaceWith(fresh);
      if (wasSelected) selected = fresh;
      incidents.refresh(incidents.keyOf(fresh));
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { unseen = 0; document.title = baseTitle; }
  });

  // Camera and detector health: the server renders the count and banner; a camera event on
  // the stream (or every 10 s, for the "since" times) fetches them again.
  var healthBusy = false, healthAgain = false;
  function refreshHealth() {
    if (!cfg.health_url) return;
    if (healthBusy) { healthAgain = true; return; }  // a change during a fetch is not lost
    healthBusy = true;
    fetch(cfg.health_url, { credentials: "same-origin" })
      .then(function (resp) { if (!resp.ok) throw new Error(String(resp.status)); return resp.text(); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.querySelector("#health");
        var old = document.getElementById("health");
        if (!fresh || !old) return;
        old.replaceWith(fresh);
        var kpi = document.getElementById("kpi-cameras");
        if (kpi) kpi.textContent = fresh.getAttribute("data-online") + "/" + fresh.getAttribute("data-total");
        var box = document.getElementById("kpi-cameras-box");
        if (box) box.classList.toggle("alert", fresh.getAttribute("data-ok") !== "true");
      })
      .catch(function () { /* the next event or tick tries again */ })
      .then(function () {
        healthBusy = false;
        if (healthAgain) { healthAgain = false; refreshHealth(); }
      });
  }
  setInterval(refreshHealth, 10000);

  function connect() {
    var es = new EventSource(cfg.stream_url, { withCredentials: true });
    es.addEventListener("open", function () { setLive("open"); refreshHealth(); });
    es.addEventListener("error", function () { setLive("error"); });
    function handle(kind, data) {
      var payload;
      try { payload = JSON.parse(data); } catch (e) { return; }
      var type = kind !== "message" ? kind : payload.type;
      var body = payload.data && typeof payload.data === "object" ? payload.data : payload;
      if (!body.site_id && payload.site_id) body.site_id = payload.site_id;
      if (!body.snapshot_url && body.has_snapshot) {
        body.snapshot_url = "/api/v1/violations/" + encodeURIComponent(body.event_id) + "/snapshot";
      }
      if (!body.event_id) return;
      if (type === "violation") onViolation(body);
      else if (type === "review" || type === "violation_end") onUpdate(body);
    }
    ["violation", "review", "violation_end", "message"].forEach(function (name) {
      es.addEventListener(name, function (ev) { handle(name, ev.data); });
    });
    es.addEventListener("camera", refreshHealth);
  }
  connect();

  // Selection + keyboard review
  function rows() { return Array.prototype.filter.call(tbody.rows, function (r) { return !r.hidden; }); }
  function select(row) {
    if (!row) return;
    if (selected) selected.setAttribute("aria-selected", "false");
    selected = row;
    row.setAttribute("aria-selected", "true");
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }
  function move(delta) {
    var list = rows();
    if (!list.length) return;
    var i = selected ? list.indexOf(selected) : -1;
    select(list[Math.max(0, Math.min(list.length - 1, i + delta))] || list[0]);
  }
  function reviewUrl(id) { return cfg.review_url.replace("{id}", encodeURIComponent(id)); }

  // An incident at once: one review per undecided alert (each its own record and audit entry).
  function reviewIncident(header, outcome) {
    var key = incidents.keyOf(header), todo = incidents.undecided(key, outcome);
    if (!todo.length || !cfg.can_review) return;
    var buttons = header.querySelectorAll("[data-outcome]");
    buttons.forEach(function (b) { b.disabled = true; });
    Promise.all(todo.map(function (row) {
      var id = row.getAttribute("data-id");
      return SG.postJSON(reviewUrl(id), { outcome: outcome })
        .then(function (resp) {
          var current = findRow(id) || row;  // the stream may have re-rendered it meanwhile
          if (!resp.ok) { current.classList.add("fresh"); return false; }
          if (incidents.statusOf(current) === "unreviewed") reviewed(id);
          setStatus(current, outcome);
          return true;
        })
        .catch(function () { return false; });
    })).then(function (done) {
      buttons.forEach(function (b) { b.disabled = false; });
      incidents.refresh(key);
      if (done.every(Boolean) && selected === header) move(1);
    });
  }

  function review(outcome) {
    if (!selected || !cfg.can_review) return;
    if (incidents.isHeader(selected)) { reviewIncident(selected, outcome); return; }
    var row = selected, id = row.getAttribute("data-id");
    SG.postJSON(reviewUrl(id), { outcome: outcome })
      .then(function (resp) {
        if (resp.ok) {
          var badge = row.querySelector(".c-status .badge");
          if (badge && badge.classList.contains("status-unreviewed")) reviewed(id);
          setStatus(row, outcome);
          incidents.refresh(incidents.keyOf(row));
          move(1);
        }
        else { row.classList.add("fresh"); }
      });
  }

  // Enter, a second click or a double click: an alert opens, an incident shows or hides its alerts.
  function activate(row) {
    if (incidents.isHeader(row)) toggle(row);
    else window.location = row.getAttribute("data-href");
  }
  function toggle(header) {
    incidents.toggle(header);
    if (selected && selected.hidden) select(header);  // collapsed under the cursor
  }

  tbody.addEventListener("click", function (ev) {
    var row = ev.target.closest("tr");
    if (!row) return;
    if (ev.target.closest("a")) return;
    var action = ev.target.closest("[data-outcome]");
    if (action) { select(row); reviewIncident(row, action.getAttribute("data-outcome")); return; }
    if (ev.target.closest("button.expand")) { toggle(row); select(row); return; }
    if (selected === row) { activate(row); } else { select(row); }
  });
  tbody.addEventListener("dblclick", function (ev) {
    var row = ev.target.closest("tr");
    if (row && !incidents.isHeader(row) && !ev.target.closest("button")) activate(row);
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea") return;
    if (ev.key === "Enter" && (tag === "button" || tag === "a")) return;  // the control's own
    var keys = { j: function () { move(1); }, k: function () { move(-1); },
      c: function () { review("confirmed"); }, f: function () { review("false_alarm"); },
      u: function () { review("unsure"); },
      Enter: function () { if (selected) activate(selected); } };
    if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
  });
})();
