/* Admin forms and buttons: serialise to JSON and send to the backend's admin API (one write
   path). Says in words what happened: which field is wrong and why (422), that a name is taken
   (409), what was created or changed (a message that survives the page's reload); asks before a
   role change. Messages come from the page (#admin-messages, in the page's language). */
(function () {
  "use strict";
  var result = document.getElementById("admin-result");
  var holder = document.getElementById("admin-messages");
  var msg = holder ? JSON.parse(holder.textContent) : {};
  var FLASH = "sg_admin_flash";

  function t(key, fallback, values) {
    var text = msg[key] || fallback;
    Object.keys(values || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(values[name]);
    });
    return text;
  }

  function show(ok, text) {
    result.hidden = false;
    result.className = "flash " + (ok ? "ok" : "error");
    result.textContent = text;
    result.scrollIntoView({ block: "nearest" });
  }

  // A success survives the reload that shows the new state.
  function reloadWith(text) {
    if (text) sessionStorage.setItem(FLASH, text);
    window.location.reload();
  }
  var pending = sessionStorage.getItem(FLASH);
  if (pending) { sessionStorage.removeItem(FLASH); show(true, pending); }

  function HttpError(status, detail) { this.status = status; this.detail = detail; }

  function send(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": SG.csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) throw new HttpError(resp.status, data.detail || resp.statusText);
        return data;
      });
    });
  }

  function labelOf(el) {
    var label = el && el.id ? document.querySelector('label[for="' + el.id + '"]') : null;
    return label ? label.textContent.trim() : (el ? el.name : "");
  }

  // One sentence per wrong field: "Camera ID: use letters, digits, - and _ ...".
  function fieldProblem(form, item) {
    var loc = item.loc || [];
    var name = String(loc[loc.length - 1] || "");
    var el = form ? form.elements.namedItem(name) : null;
    var ctx = item.ctx || {};
    var why;
    if (item.type === "string_pattern_mismatch") {
      why = (el && el.getAttribute("title")) || t("admin.err_pattern", "not in the expected form");
    } else if (item.type === "string_too_short") {
      why = t("admin.err_too_short", "at least {n} characters", { n: ctx.min_length });
    } else if (item.type === "string_too_long") {
      why = t("admin.err_too_long", "at most {n} characters", { n: ctx.max_length });
    } else if (item.type === "missing") {
      why = t("admin.err_missing", "required");
    } else {
      why = item.msg || item.type;
    }
    if (el && el.setAttribute) {
      el.setAttribute("aria-invalid", "true");
      el.addEventListener("input", function () { el.removeAttribute("aria-invalid"); }, { once: true });
    }
    return (el ? labelOf(el) : name) + ": " + why;
  }

  function explain(err, form) {
    if (!(err instanceof HttpError)) return t("admin.err_network", "The service did not answer; try again.");
    var detail = err.detail;
    if (err.status === 422 && Array.isArray(detail)) {
      return detail.map(function (item) { return fieldProblem(form, item); }).join(" · ");
    }
    if (err.status === 409 && form && form.getAttribute("data-key-field")) {
      var key = form.elements.namedItem(form.getAttribute("data-key-field"));
      if (key) {
        key.setAttribute("aria-invalid", "true");
        key.focus();
        return t("admin.err_taken", "{field} “{value}” is already taken: choose another.",
          { field: labelOf(key), value: key.value });
      }
    }
    if (detail && typeof detail === "object" && !Array.isArray(detail)) detail = detail.message || JSON.stringify(detail);
    if (err.status === 403) return t("admin.err_forbidden", "Not allowed for your role.");
    return t("admin.err_refused", "Not done: {detail}", { detail: String(detail) }) + " (" + err.status + ")";
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

  function successText(el, body) {
    var text = el.getAttribute("data-success");
    if (!text) return "";
    Object.keys(body || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(body[name]));
    });
    return text;
  }

  document.querySelectorAll("form[data-api]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = formBody(form);
      send(form.getAttribute("data-method") || "POST", form.getAttribute("data-api"), body)
        .then(function (data) {
          if (data && data.key) {
            document.getElementById("new-key").hidden = false;
            document.getElementById("new-key-value").textContent = data.key;
            show(true, successText(form, body) || "OK");
          } else { reloadWith(successText(form, body)); }
        })
        .catch(function (err) { show(false, explain(err, form)); });
    });
  });

  document.querySelectorAll("select[data-api]").forEach(function (select) {
    var saved = select.value;
    select.addEventListener("change", function () {
      var chosen = select.options[select.selectedIndex].textContent.trim();
      var question = select.getAttribute("data-confirm");
      if (question && !window.confirm(question.split("{value}").join(chosen))) {
        select.value = saved;  // nothing changes unless confirmed
        return;
      }
      var body = {};
      body[select.getAttribute("data-field")] = select.value;
      send(select.getAttribute("data-method"), select.getAttribute("data-api"), body)
        .then(function () { reloadWith(successText(select, { value: chosen })); })
        .catch(function (err) { select.value = saved; show(false, explain(err, null)); });
    });
  });

  document.querySelectorAll("button[data-api]").forEach(function (button) {
    button.addEventListener("click", function () {
      var question = button.getAttribute("data-confirm");
      if (question && !window.confirm(question)) return;
      var raw = button.getAttribute("data-body");
      send(button.getAttribute("data-method"), button.getAttribute("data-api"),
        raw ? JSON.parse(raw) : undefined)
        .then(function () { reloadWith(successText(button, {})); })
        .catch(function (err) { show(false, explain(err, null)); });
    });
  });
})();
