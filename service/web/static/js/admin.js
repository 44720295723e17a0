/* Admin forms: serialise to JSON and send to the backend's admin API; show a new key once. */
(function () {
  "use strict";
  var result = document.getElementById("admin-result");

  function show(ok, text) {
    result.hidden = false;
    result.className = "flash " + (ok ? "ok" : "error");
    result.textContent = text;
    result.scrollIntoView({ block: "nearest" });
  }

  function send(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": SG.csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) {
          var detail = data.detail;
          if (Array.isArray(detail)) detail = detail.map(function (d) { return (d.loc || []).join(".") + ": " + d.msg; }).join("; ");
          else if (detail && typeof detail === "object") detail = detail.message || JSON.stringify(detail);
          throw new Error(resp.status + ": " + (detail || resp.statusText));
        }
        return data;
      });
    });
  }

  function formBody(form) {
    var body = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name) return;
      if (el.type === "select-multiple") {
        body[el.name] = Array.prototype.filter.call(el.options, function (o) { return o.selected; })
          .map(function (o) { return o.value; });
      } else if (el.type === "checkbox") { body[el.name] = el.checked; }
      else if (el.value !== "") { body[el.name] = el.value; }
    });
    return body;
  }

  document.querySelectorAll("form[data-api]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      send(form.getAttribute("data-method") || "POST", form.getAttribute("data-api"), formBody(form))
        .then(function (data) {
          if (data && data.key) {
            document.getElementById("new-key").hidden = false;
            document.getElementById("new-key-value").textContent = data.key;
            show(true, "OK");
          } else { window.location.reload(); }
        })
        .catch(function (err) { show(false, err.message); });
    });
  });
  document.querySelectorAll("select[data-api]").forEach(function (select) {
    select.addEventListener("change", function () {
      var body = {};
      body[select.getAttribute("data-field")] = select.value;
      send(select.getAttribute("data-method"), select.getAttribute("data-api"), body)
        .then(function () { window.location.reload(); })
        .catch(function (err) { show(false, err.message); });
    });
  });
  document.querySelectorAll("button[data-api]").forEach(function (button) {
    button.addEventListener("click", function () {
      var raw = button.getAttribute("data-body");
      send(button.getAttribute("data-method"), button.getAttribute("data-api"),
        raw ? JSON.parse(raw) : undefined)
        .then(function () { window.location.reload(); })
        .catch(function (err) { show(false, err.message); });
    });
  });
})();
