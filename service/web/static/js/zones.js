/* Polygon zone editor on a camera snapshot; coordinates in frame pixels (the detector's unit). */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("zone-config").textContent);
  var svg = document.getElementById("zone-svg");
  var list = document.getElementById("zone-list");
  var result = document.getElementById("zone-result");
  var zones = (cfg.zones || []).map(function (z) {
    return { name: z.name, polygon: z.polygon || [], required_ppe: z.required_ppe || ["helmet"] };
  });
  var draft = [];
  var NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }
  function pts(poly) { return poly.map(function (p) { return p[0] + "," + p[1]; }).join(" "); }

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
      li.textContent = z.name + " · " + z.polygon.length + " pts · " + z.required_ppe.join(", ") + " ";
      var del = document.createElement("button");
      del.type = "button"; del.className = "btn small"; del.textContent = "×";
      del.setAttribute("aria-label", "delete " + z.name);
      del.addEventListener("click", function () { zones.splice(i, 1); draw(); });
      li.appendChild(del);
      list.appendChild(li);
    });
    document.getElementById("zone-yaml").textContent = "zones:\n" + zones.map(function (z) {
      return "  - name: " + JSON.stringify(z.name) + "\n    requires: " + JSON.stringify(z.required_ppe) +
        "\n    polygon: " + JSON.stringify(z.polygon);
    }).join("\n");
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
    var name = document.getElementById("zone-name").value.trim();
    if (!name || draft.length < 3) { show(false, cfg.messages["admin.zone_help"]); return; }
    var ppe = Array.prototype.filter.call(document.querySelectorAll('input[name="ppe"]'), function (c) { return c.checked; })
      .map(function (c) { return c.value; });
    zones.push({ name: name, polygon: draft, required_ppe: ppe });
    draft = []; document.getElementById("zone-name").value = "";
    draw();
  });
  function show(ok, text) {
    result.hidden = false; result.className = "flash " + (ok ? "ok" : "error"); result.textContent = text;
  }
  document.getElementById("zone-save").addEventListener("click", function () {
    fetch(cfg.api_url, {
      method: "PATCH", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": SG.csrf() },
      body: JSON.stringify({ zones: zones }),
    }).then(function (resp) {
      if (resp.ok) { show(true, cfg.messages["admin.zone_saved"]); return; }
      return resp.json().catch(function () { return {}; }).then(function (b) {
        show(false, resp.status + ": " + JSON.stringify(b.detail || resp.statusText));
      });
    });
  });
  draw();
})();
