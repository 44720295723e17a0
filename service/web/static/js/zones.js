/* Polygon zone editor on a camera snapshot; coordinates in frame pixels (the detector's unit).
   One button saves: "Save zone" adds the drawn zone to the camera (PATCH /api/v1/cameras/{id}),
   deleting a zone saves at once. Detectors receive the camera's zones with their next heartbeat
   (docs/contract.md), unless their detector.yaml sets zones for the camera. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("zone-config").textContent);
  var svg = document.getElementById("zone-svg");
  var list = document.getElementById("zone-list");
  var result = document.getElementById("zone-result");
  var msg = cfg.messages || {};
  var zones = (cfg.zones || []).map(function (z) {
    var zone = { name: z.name, polygon: z.polygon || [], required_ppe: z.required_ppe || ["helmet"] };
    if (z.schedule && z.schedule.length) zone.schedule = z.schedule;
    return zone;
  });
  var draft = [];
  var NS = "http://www.w3.org/2000/svg";

  function t(key, values) {
    var text = msg[key] || key;
    Object.keys(values || {}).forEach(function (k) { text = text.split("{" + k + "}").join(values[k]); });
    return text;
  }
  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }
  function pts(poly) { return poly.map(function (p) { return p[0] + "," + p[1]; }).join(" "); }
  function when(z) {
    if (!z.schedule || !z.schedule.length) return t("admin.zone_always");
    return z.schedule.map(function (w) {
      var days = w.days.length === 7 ? t("admin.zone_every_day") : w.days.map(function (d) { return t("day." + d); }).join(" ");
      return days + " " + w.start.slice(0, 5) + "–" + w.end.slice(0, 5);
    }).join("; ");
  }

  function draw() {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    zones.forEach(function (z) {
      svg.appendChild(el("polygon", { points: pts(z.polygon) }));
      if (z.polygon.length) svg.appendChild(el("text", { x: z.polygon[0][0] + 6, y: z.polygon[0][1] + 20 }, z.name));
    });
    if (draft.length) {
      svg.appendChild(el("polygon", { points: pts(draft), class: "draft" }));
      draft.forEach(function (p) { svg.appendChild(el("circle", { cx: p[0], cy: p[1], r: 6 })); });
    }
    list.innerHTML = "";
    zones.forEach(function (z, i) {
      var li = document.createElement("li");
      li.setAttribute("data-zone", z.name);
      var name = document.createElement("strong");
      name.textContent = z.name;
      li.appendChild(name);
      li.appendChild(document.createTextNode(" · " + z.required_ppe.map(function (p) { return t("ppe." + p); }).join(", ") +
        (z.danger ? " · " + t("admin.zone_danger") : "") + " · " + when(z) + " "));
      var del = document.createElement("button");
      del.type = "button"; del.className = "btn small"; del.textContent = t("admin.zone_delete");
      del.setAttribute("aria-label", t("admin.zone_delete") + " " + z.name);
      del.addEventListener("click", function () {
        if (!window.confirm(t("admin.zone_confirm_delete", { name: z.name }))) return;
        var kept = zones.slice(0, i).concat(zones.slice(i + 1));
        save(kept, t("admin.zone_deleted", { name: z.name }));
      });
      li.appendChild(del);
      list.appendChild(li);
    });
    document.getElementById("zone-none").hidden = zones.length > 0;
    document.getElementById("zone-yaml").textContent = "cameras:\n  - id: " + cfg.camera_id + "\n    zones:\n" +
      zones.map(function (z) {
        var out = "      - name: " + JSON.stringify(z.name) + "\n        requires: " +
          JSON.stringify(z.required_ppe) + "\n        polygon: " + JSON.stringify(z.polygon);
        if (z.danger) out += "\n        danger: true";
        if (z.schedule) out += "\n        schedule: " + JSON.stringify(z.schedule);
        return out;
      }).join("\n");
  }

  function show(ok, text) {
    result.hidden = false; result.className = "flash " + (ok ? "ok" : "error"); result.textContent = text;
  }

  // Every change is saved at once: the camera's zones as the service keeps them.
  function save(next, success) {
    var button = document.getElementById("zone-save");
    button.disabled = true;
    return fetch(cfg.api_url, {
      method: "PATCH", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": SG.csrf() },
      body: JSON.stringify({ zones: next }),
    }).then(function (resp) {
      if (resp.ok) { zones = next; draw(); show(true, success); return true; }
      return resp.json().catch(function () { return {}; }).then(function (b) {
        var detail = Array.isArray(b.detail) ? b.detail.map(function (d) { return d.msg; }).join("; ") : (b.detail || resp.statusText);
        show(false, t("admin.zone_not_saved", { detail: String(detail) }));
        return false;
      });
    }).catch(function () {
      show(false, t("admin.zone_not_saved", { detail: "—" }));
      return false;
    }).then(function (ok) { button.disabled = false; return ok; });
  }

  svg.addEventListener("click", function (ev) {
    var rect = svg.getBoundingClientRect();
    var x = Math.round((ev.clientX - rect.left) / rect.width * cfg.width);
    var y = Math.round((ev.clientY - rect.top) / rect.height * cfg.height);
    draft.push([Math.max(0, Math.min(cfg.width, x)), Math.max(0, Math.min(cfg.height, y))]);
    draw();
  });
  document.getElementById("zone-undo").addEventListener("click", function () { draft.pop(); draw(); });
  document.getElementById("zone-clear").addEventListener("click", function () { draft = []; draw(); });
  document.getElementById("zone-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = document.getElementById("zone-name");
    var name = input.value.trim();
    if (draft.length < 3) { show(false, t("admin.zone_need_points")); return; }
    if (zones.some(function (z) { return z.name === name; })) {
      show(false, t("admin.zone_name_taken", { name: name })); input.focus(); return;
    }
    var checked = function (sel) {
      return Array.prototype.filter.call(document.querySelectorAll(sel), function (c) { return c.checked; })
        .map(function (c) { return c.value; });
    };
    var zone = { name: name, polygon: draft, required_ppe: checked('input[name="ppe"]'),
                 danger: document.getElementById("zone-danger").checked };
    var start = document.getElementById("zone-start").value, end = document.getElementById("zone-end").value;
    var days = checked('input[name="day"]');
    if (start || end || days.length < 7) {
      zone.schedule = [{ days: days, start: start || "00:00", end: end || "23:59:59" }];
    }
    save(zones.concat([zone]), t("admin.zone_saved_one", { name: name })).then(function (ok) {
      if (ok) { draft = []; input.value = ""; draw(); }
    });
  });
  draw();
})();
