/* Shared helpers for every page: menu toggle, auto-submit selects, time zone cookie, CSRF fetch. */
(function () {
  "use strict";
  var SG = (window.SG = window.SG || {});

  // Remember the browser's time zone so the server renders times in it (first visit uses UTC).
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && document.cookie.indexOf("sg_tz=" + encodeURIComponent(tz)) === -1) {
      document.cookie = "sg_tz=" + encodeURIComponent(tz) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* very old browser: stay on the server's default */ }

  SG.csrf = function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  };

  SG.postJSON = function (url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": SG.csrf() },
      body: JSON.stringify(body || {}),
    });
  };

  SG.formatTime = function (iso) {
    var tz = document.body.getAttribute("data-tz") || undefined;
    var lang = document.body.getAttribute("data-lang") === "zh" ? "zh-CN" : "en-GB";
    try {
      return new Intl.DateTimeFormat(lang, {
        timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
      }).format(new Date(iso));
    } catch (e) { return iso; }
  };

  SG.formatDuration = function (s) {
    if (s === null || s === undefined) return "—";
    s = Math.round(Number(s));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  };

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
    var toggle = document.querySelector("[data-menu-toggle]");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var bar = document.getElementById("topbar");
        var open = bar.classList.toggle("open");
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      });
    }
  });
})();
