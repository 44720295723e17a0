/* Alert detail: review buttons (and c/f/u keys) post JSON to the backend's review API. */
(function () {
  "use strict";
  var toggle = document.getElementById("toggle-boxes");
  if (toggle) {
    toggle.addEventListener("change", function () {
      var overlay = document.getElementById("box-overlay");
      if (overlay) overlay.style.display = toggle.checked ? "" : "none";
    });
  }
  var form = document.getElementById("review-form");
  if (!form) return;
  var result = document.getElementById("review-result");
  var busy = false;

  function send(outcome) {
    if (busy) return;
    busy = true;
    form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    SG.postJSON(form.getAttribute("data-url"), {
      outcome: outcome, comment: document.getElementById("comment").value,
    }).then(function (resp) {
      if (resp.ok) { window.location.reload(); return; }
      return resp.json().catch(function () { return {}; }).then(function (body) {
        result.hidden = false;
        result.className = "flash error";
        result.textContent = resp.status + ": " + (body.detail || resp.statusText);
      });
    }).catch(function (err) {
      result.hidden = false; result.className = "flash error"; result.textContent = String(err);
    }).finally(function () {
      busy = false;
      form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
    });
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var button = ev.submitter || document.activeElement;
    if (button && button.value) send(button.value);
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") return;
    var map = { c: "confirmed", f: "false_alarm", u: "unsure" };
    if (map[ev.key]) { ev.preventDefault(); send(map[ev.key]); }
  });
})();
