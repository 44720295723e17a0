/* Incidents on the live panel: the alerts of one camera and one moment under one summary row.

   The rule is service/web/incidents.py's: alerts of the same camera that started within
   `windowS` seconds of the incident's first alert. The server groups the rows it renders; this
   file groups the rows that arrive live, keeps each summary (count, kinds, statuses, zones)
   true to its alert rows, and expands or collapses them. Every alert keeps its own row
   (`tr[data-id]`, with `data-incident` naming its group), its own review and audit entry. */
(function () {
  "use strict";
  var SG = (window.SG = window.SG || {});
  var UNDECIDED = { unreviewed: true, unsure: true };

  function sel(value) { return '"' + CSS.escape(value) + '"'; }
  function field(row, name) { return row.querySelector('[data-field="' + name + '"]'); }
  function startedMs(row) { return Date.parse(row.getAttribute("data-started")); }
  function badgeValue(row, cell, prefix) {
    var badge = row.querySelector(cell + " .badge");
    var found = badge && new RegExp("\\b" + prefix + "-(\\w+)").exec(badge.className);
    return found ? found[1] : null;
  }
  function counts(values) {
    var out = {};
    values.forEach(function (v) { if (v) out[v] = (out[v] || 0) + 1; });
    return Object.keys(out).sort().map(function (k) { return [k, out[k]]; });
  }

  function Incidents(tbody, windowS, t) {
    this.tbody = tbody;
    this.windowMs = Math.max(0, Number(windowS) || 0) * 1000;
    this.t = t;
  }
  var P = Incidents.prototype;

  P.isHeader = function (row) { return !!row && row.classList.contains("incident"); };
  P.keyOf = function (row) { return row ? row.getAttribute("data-incident") : null; };
  P.header = function (key) {
    return this.tbody.querySelector("tr.incident[data-incident=" + sel(key) + "]");
  };
  P.members = function (key) {
    return Array.prototype.slice.call(
      this.tbody.querySelectorAll("tr[data-id][data-incident=" + sel(key) + "]"));
  };
  P.statusOf = function (row) { return badgeValue(row, ".c-status", "status") || "unreviewed"; };
  P.isOpen = function (header) {
    return header.querySelector("button.expand").getAttribute("aria-expanded") === "true";
  };

  // The alerts a review of the whole incident applies to: the undecided ones (unreviewed or
  // unsure) that do not already carry this outcome. A decision made on one alert stays.
  P.undecided = function (key, outcome) {
    var self = this;
    return this.members(key).filter(function (row) {
      var status = self.statusOf(row);
      return UNDECIDED[status] && status !== outcome;
    });
  };

  P.toggle = function (header, open) {
    if (open === undefined) open = !this.isOpen(header);
    header.querySelector("button.expand").setAttribute("aria-expanded", open ? "true" : "false");
    header.classList.toggle("open", open);
    this.members(this.keyOf(header)).forEach(function (row) { row.hidden = !open; });
  };

  // A new alert row (not yet in the table): into the incident of its camera and moment (made
  // from a lone row when needed, moved to the top), else on top. Returns the incident's key.
  P.place = function (row) {
    var camera = row.getAttribute("data-camera"), at = startedMs(row), match = null;
    var candidates = this.tbody.querySelectorAll(
      "tr[data-camera=" + sel(camera || "") + "]:not(.member)");
    for (var i = 0; i < candidates.length && !match; i += 1) {
      if (Math.abs(startedMs(candidates[i]) - at) <= this.windowMs) match = candidates[i];
    }
    if (!match || !camera || isNaN(at)) {
      this.tbody.insertBefore(row, this.tbody.firstChild);
      return null;
    }
    var header = this.isHeader(match) ? match : this.wrap(match, row);
    this.join(header, row);
    this.toTop(header);
    this.refresh(this.keyOf(header));
    return this.keyOf(header);
  };

  // A summary row over a lone alert row; keyed by the earlier alert, as the server does.
  P.wrap = function (lone, newcomer) {
    var header = document.getElementById("incident-template").content.firstElementChild.cloneNode(true);
    var first = startedMs(newcomer) < startedMs(lone) ? newcomer : lone;
    header.setAttribute("data-incident", first.getAttribute("data-id"));
    header.setAttribute("data-camera", lone.getAttribute("data-camera"));
    header.setAttribute("data-started", first.getAttribute("data-started"));
    ["c-time", "c-camera"].forEach(function (cls) {
      header.querySelector("." + cls).replaceWith(first.querySelector("." + cls).cloneNode(true));
    });
    var open = header.querySelector(".c-time a.open");  // the summary opens no single alert
    if (open) open.replaceWith.apply(open, Array.prototype.slice.call(open.childNodes));
    this.tbody.insertBefore(header, lone);
    var wasSelected = lone.getAttribute("aria-selected") === "true";
    this.join(header, lone);
    if (wasSelected) this.toggle(header, true);  // never hide the row someone is on
    return header;
  };

  P.join = function (header, row) {
    row.setAttribute("data-incident", this.keyOf(header));
    row.classList.add("member");
    row.hidden = !this.isOpen(header);
    header.parentNode.insertBefore(row, header.nextSibling);
    var thumb = row.querySelector(".c-thumb");  // the newest alert's picture
    if (thumb) header.querySelector(".c-thumb").replaceWith(thumb.cloneNode(true));
  };

  P.toTop = function (header) {
    var block = [header].concat(this.members(this.keyOf(header)));
    block.forEach(function (row) { row.remove(); });  // the top may be this block itself
    var anchor = this.tbody.firstChild;
    block.forEach(function (row) { this.tbody.insertBefore(row, anchor); }, this);
  };

  // A row the server rendered again replaces `old`: it stays in old's incident, as shown.
  P.adopt = function (fresh, old) {
    var key = this.keyOf(old);
    if (!key) return;
    fresh.setAttribute("data-incident", key);
    fresh.classList.add("member");
    fresh.hidden = old.hidden;
  };

  // Summary from the alert rows; fewer than two rows left and it is a lone row again.
  P.refresh = function (key) {
    var header = key && this.header(key);
    if (!header) return;
    var rows = this.members(key), t = this.t, self = this;
    if (rows.length < 2) {
      rows.forEach(function (row) {
        row.removeAttribute("data-incident"); row.classList.remove("member"); row.hidden = false;
      });
      header.remove();
      return;
    }
    field(header, "count").textContent = t("alerts.incident_count").replace("{n}", rows.length);
    function badges(name, prefix, values) {
      var holder = field(header, name);
      holder.textContent = "";
      counts(values).forEach(function (pair) {
        var badge = document.createElement("span");
        badge.className = "badge " + prefix + "-" + pair[0];
        badge.textContent = t(prefix === "kind" ? "kind." + pair[0] : "status." + pair[0]) + " × " + pair[1];
        holder.appendChild(badge);
        holder.appendChild(document.createTextNode(" "));
      });
    }
    badges("kinds", "kind", rows.map(function (r) { return badgeValue(r, ".c-kind", "kind"); }));
    badges("statuses", "status", rows.map(function (r) { return self.statusOf(r); }));
    var zones = {};
    rows.forEach(function (r) { zones[r.querySelector(".c-zone").textContent.trim()] = true; });
    field(header, "zones").textContent = Object.keys(zones).sort().join(", ");
    var actions = field(header, "actions");
    if (actions) actions.hidden = !rows.some(function (r) { return UNDECIDED[self.statusOf(r)]; });
  };

  // Keep at most `limit` alert rows (the page size), dropping the oldest.
  P.trim = function (limit) {
    var rows = this.tbody.querySelectorAll("tr[data-id]");
    for (var i = rows.length - 1; i >= limit; i -= 1) {
      var key = this.keyOf(rows[i]);
      rows[i].remove();
      if (key) this.refresh(key);
    }
  };

  SG.Incidents = Incidents;
})();
