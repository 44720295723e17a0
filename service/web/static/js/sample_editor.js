/* Trainer's box editor: select, reclassify, delete, draw, move and resize boxes on a sample's
   frame, then save them through PUT /api/v1/samples/{id}/labels. Coordinates are frame pixels
   (the API's unit). A selected box moves when dragged, resizes by its corner handles, and moves
   by a pixel with the arrow keys (ten with Shift). */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("editor-config").textContent);
  var svg = document.getElementById("sample-svg");
  var img = document.getElementById("sample-frame");
  var rowsEl = document.getElementById("box-rows");
  var newClass = document.getElementById("new-class");
  var result = document.getElementById("save-result");
  var NS = "http://www.w3.org/2000/svg";
  var MIN_BOX = 3; // frame pixels: a smaller drag is treated as a click
  var DRAG_PX = 4; // screen pixels a press must travel before it becomes a drag
  var width = cfg.width || 0, height = cfg.height || 0;
  var saved = plain(cfg.boxes), boxes = plain(cfg.boxes);
  var selected = -1;
  var press = null; // the gesture in progress: {start, current, screen, index, drawing, mode}
  var CORNERS = { nw: [0, 1], ne: [2, 1], sw: [0, 3], se: [2, 3] }; // xyxy indices per handle

  function t(key, fmt) {
    var text = cfg.messages[key] || key;
    Object.keys(fmt || {}).forEach(function (k) { text = text.replace("{" + k + "}", fmt[k]); });
    return text;
  }

  function plain(list) {
    return list.map(function (b) { return { class: b.class, xyxy: b.xyxy.slice() }; });
  }

  function round1(v) { return Math.round(v * 10) / 10; }

  function clampBox(xyxy) {
    var x1 = Math.max(0, Math.min(xyxy[0], xyxy[2])), x2 = Math.min(width, Math.max(xyxy[0], xyxy[2]));
    var y1 = Math.max(0, Math.min(xyxy[1], xyxy[3])), y2 = Math.min(height, Math.max(xyxy[1], xyxy[3]));
    return [round1(x1), round1(y1), round1(x2), round1(y2)];
  }

  function isDirty() { return JSON.stringify(boxes) !== JSON.stringify(saved); }

  // Pointer position in frame pixels (the SVG's viewBox is the frame, stretched to the image).
  function toFrame(ev) {
    var rect = svg.getBoundingClientRect();
    var x = (ev.clientX - rect.left) / rect.width * width;
    var y = (ev.clientY - rect.top) / rect.height * height;
    return [round1(Math.max(0, Math.min(width, x))), round1(Math.max(0, Math.min(height, y)))];
  }

  function node(name, attrs, text) {
    var el = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text) el.textContent = text;
    return el;
  }

  function rectAttrs(xyxy) {
    var b = clampBox(xyxy);
    return { x: b[0], y: b[1], width: Math.max(0, b[2] - b[0]), height: Math.max(0, b[3] - b[1]) };
  }

  function label(name) { return cfg.class_labels[name] || name; } // the list's name, everywhere

  function screenScale() { return width / (svg.getBoundingClientRect().width || width); }

  function drawFrame() {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var font = Math.round(13 * screenScale()); // about 13 screen pixels at any display size
    // Large boxes first, so a head inside a person box stays on top and can be clicked.
    var order = boxes.map(function (_, i) { return i; }).sort(function (a, b) {
      var A = boxes[a].xyxy, B = boxes[b].xyxy;
      return (B[2] - B[0]) * (B[3] - B[1]) - (A[2] - A[0]) * (A[3] - A[1]);
    });
    order.forEach(function (i) {
      var b = boxes[i], attrs = rectAttrs(b.xyxy);
      attrs["class"] = "cls-" + b.class + (i === selected ? " selected" : "");
      attrs["data-index"] = i;
      svg.appendChild(node("rect", attrs));
      var above = attrs.y > font + 4;
      svg.appendChild(node("text", {
        x: attrs.x + 2, y: above ? attrs.y - 4 : attrs.y + attrs.height + font, style: "font-size:" + font + "px",
      }, "#" + (i + 1) + " " + label(b.class)));
    });
    if (selected >= 0 && boxes[selected]) { // corner handles of the selected box: drag to resize
      var size = Math.max(6, Math.round(12 * screenScale())), sel = clampBox(boxes[selected].xyxy);
      Object.keys(CORNERS).forEach(function (corner) {
        var c = CORNERS[corner];
        svg.appendChild(node("rect", {
          "class": "handle handle-" + corner, "data-handle": corner,
          x: sel[c[0]] - size / 2, y: sel[c[1]] - size / 2, width: size, height: size,
        }));
      });
    }
    if (press && press.drawing) {
      var draft = rectAttrs([press.start[0], press.start[1], press.current[0], press.current[1]]);
      draft["class"] = "draft";
      svg.appendChild(node("rect", draft));
    }
  }

  function classSelect(box, i) {
    var menu = document.createElement("select");
    menu.setAttribute("aria-label", t("samples.class") + " #" + (i + 1));
    cfg.classes.forEach(function (name) {
      var option = document.createElement("option");
      option.value = name;
      option.textContent = cfg.class_labels[name] || name;
      option.selected = name === box.class;
      menu.appendChild(option);
    });
    menu.addEventListener("change", function () { // keeps the list (and the focus) as it is
      boxes[i].class = menu.value;
      result.hidden = true;
      select(i);
    });
    return menu;
  }

  function drawList() {
    rowsEl.innerHTML = "";
    boxes.forEach(function (box, i) {
      var row = document.createElement("tr");
      row.setAttribute("data-index", i);
      var num = document.createElement("td");
      num.textContent = "#" + (i + 1);
      var cls = document.createElement("td");
      cls.appendChild(classSelect(box, i));
      var pos = document.createElement("td");
      pos.className = "mono";
      var b = clampBox(box.xyxy);
      pos.textContent = Math.round(b[0]) + "," + Math.round(b[1]) + " – " + Math.round(b[2]) + "," + Math.round(b[3]);
      var actions = document.createElement("td");
      var del = document.createElement("button");
      del.type = "button"; del.className = "btn small"; del.textContent = t("samples.delete");
      del.setAttribute("aria-label", t("samples.delete") + " #" + (i + 1));
      del.addEventListener("click", function (ev) {
        ev.stopPropagation();
        boxes.splice(i, 1); selected = -1; changed();
      });
      actions.appendChild(del);
      [num, cls, pos, actions].forEach(function (td) { row.appendChild(td); });
      row.addEventListener("click", function (ev) {
        if (ev.target.closest("select, button")) return;
        select(i);
      });
      rowsEl.appendChild(row);
    });
    markRows();
  }

  function markRows() {
    rowsEl.querySelectorAll("tr").forEach(function (row) {
      row.setAttribute("aria-selected", Number(row.getAttribute("data-index")) === selected ? "true" : "false");
    });
    document.getElementById("no-boxes").hidden = boxes.length > 0;
    document.getElementById("dirty").hidden = !isDirty();
  }

  function draw() { drawFrame(); drawList(); }

  function changed() { result.hidden = true; draw(); }

  function select(i) {
    selected = i;
    drawFrame();
    markRows();
    var row = rowsEl.querySelector('tr[data-index="' + i + '"]');
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  // The selected box shifted by (dx, dy), kept whole inside the frame.
  function shifted(xyxy, dx, dy) {
    var b = clampBox(xyxy);
    dx = Math.max(-b[0], Math.min(width - b[2], dx));
    dy = Math.max(-b[1], Math.min(height - b[3], dy));
    return [round1(b[0] + dx), round1(b[1] + dy), round1(b[2] + dx), round1(b[3] + dy)];
  }

  // A press on the frame: on a corner handle of the selected box, a drag resizes it; on the
  // selected box, a drag moves it; elsewhere a short click selects the box under the pointer
  // (or clears the selection) and a drag draws a new box of the chosen class.
  svg.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0 || !width || !height) return;
    var handle = ev.target.closest && ev.target.closest("rect[data-handle]");
    var hit = ev.target.closest && ev.target.closest("rect[data-index]");
    var index = hit ? Number(hit.getAttribute("data-index")) : -1;
    var mode = handle ? "resize" : (index >= 0 && index === selected ? "move" : "draw");
    press = {
      start: toFrame(ev), current: toFrame(ev), screen: [ev.clientX, ev.clientY],
      index: handle ? selected : index, drawing: false, mode: mode,
      corner: handle ? handle.getAttribute("data-handle") : null,
      origin: mode === "draw" ? null : clampBox(boxes[selected].xyxy),
    };
    svg.setPointerCapture(ev.pointerId);
    ev.preventDefault();
  });
  svg.addEventListener("pointermove", function (ev) {
    if (!press) return;
    var moved = Math.abs(ev.clientX - press.screen[0]) + Math.abs(ev.clientY - press.screen[1]);
    if (moved >= DRAG_PX) press.drawing = true;
    if (!press.drawing) return;
    press.current = toFrame(ev);
    var dx = press.current[0] - press.start[0], dy = press.current[1] - press.start[1];
    if (press.mode === "move") {
      boxes[press.index].xyxy = shifted(press.origin, dx, dy);
    } else if (press.mode === "resize") {
      var b = press.origin.slice(), c = CORNERS[press.corner];
      b[c[0]] = press.current[0]; b[c[1]] = press.current[1];
      boxes[press.index].xyxy = b; // normalised (x1 < x2, y1 < y2) when the press ends
    }
    drawFrame();
  });
  svg.addEventListener("pointerup", function (ev) {
    if (!press) return;
    var gesture = press;
    press = null;
    gesture.current = toFrame(ev);
    if (gesture.mode !== "draw") {
      if (gesture.drawing) {
        var box = clampBox(boxes[gesture.index].xyxy);
        if (box[2] - box[0] < MIN_BOX || box[3] - box[1] < MIN_BOX) box = gesture.origin;
        boxes[gesture.index].xyxy = box;
        changed();
      }
      return;
    }
    var b = clampBox([gesture.start[0], gesture.start[1], gesture.current[0], gesture.current[1]]);
    if (gesture.drawing && b[2] - b[0] >= MIN_BOX && b[3] - b[1] >= MIN_BOX) {
      boxes.push({ class: newClass.value, xyxy: b });
      selected = boxes.length - 1;
      changed();
    } else {
      select(gesture.index);
    }
  });
  svg.addEventListener("pointercancel", function () {
    if (press && press.origin && press.index >= 0) boxes[press.index].xyxy = press.origin;
    press = null; drawFrame();
  });

  // Arrow keys nudge the selected box (Shift: ten pixels); Delete removes it.
  document.addEventListener("keydown", function (ev) {
    if (selected < 0 || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea") return;
    var step = ev.shiftKey ? 10 : 1;
    var moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[ev.key]) {
      ev.preventDefault();
      boxes[selected].xyxy = shifted(boxes[selected].xyxy, moves[ev.key][0], moves[ev.key][1]);
      changed();
    } else if (ev.key === "Delete") {
      ev.preventDefault();
      boxes.splice(selected, 1); selected = -1; changed();
    }
  });

  function show(ok, text) {
    result.hidden = false;
    result.className = "flash " + (ok ? "ok" : "error");
    result.textContent = text;
  }

  function errorText(resp, body) {
    var detail = body && body.detail;
    if (Array.isArray(detail)) detail = detail.map(function (d) { return d.msg || JSON.stringify(d); }).join("; ");
    return t("samples.save_failed") + " (" + resp.status + "): " + (detail || resp.statusText);
  }

  document.getElementById("save-labels").addEventListener("click", function () {
    var button = this;
    var body = boxes.map(function (b) { return { class: b.class, xyxy: clampBox(b.xyxy) }; })
      .filter(function (b) { return b.xyxy[2] > b.xyxy[0] && b.xyxy[3] > b.xyxy[1]; });
    button.disabled = true;
    fetch(cfg.labels_url, {
      method: "PUT",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": SG.csrf() },
      body: JSON.stringify({ boxes: body }),
    }).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (data) {
        if (!resp.ok) { show(false, errorText(resp, data)); return; }
        saved = plain(data.labels);
        boxes = plain(data.labels);
        selected = -1;
        draw();
        var audit = cfg.kind === "audit"; // an audit frame is now labelled (maybe: nothing there)
        document.getElementById("corrected-state").innerHTML =
          '<span class="badge state-online" data-status="' + (audit ? "labelled" : "corrected") + '">' +
          t(audit ? "samples.status_labelled" : "samples.corrected") + "</span>";
        show(true, t(audit ? "samples.labelled_n" : "samples.saved", { n: data.labels.length }));
      });
    }).catch(function (err) {
      show(false, t("samples.save_failed") + ": " + err);
    }).then(function () { button.disabled = false; });
  });

  // A class the list lacks (one the model does not have yet, e.g. "gloves"): typed, checked
  // against the input's pattern (the API's rule), then offered and chosen for new boxes.
  var other = document.getElementById("other-class");
  function addClass() {
    var name = other.value.trim();
    if (!name) return;
    if (!other.checkValidity()) { other.reportValidity(); return; }
    if (cfg.classes.indexOf(name) < 0) {
      cfg.classes.push(name);
      var option = document.createElement("option");
      option.value = name; option.textContent = name;
      newClass.appendChild(option);
      drawList(); // every box's menu offers it too
    }
    newClass.value = name;
    other.value = "";
  }
  other.addEventListener("change", addClass);
  other.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") { ev.preventDefault(); addClass(); }
  });

  document.getElementById("revert-labels").addEventListener("click", function () {
    boxes = plain(saved); selected = -1; changed();
  });

  // Audit frames: "Nothing there" labels the frame as holding no worker (saves no boxes).
  var empty = document.getElementById("mark-empty");
  if (empty) empty.addEventListener("click", function () {
    boxes = []; selected = -1; changed();
    document.getElementById("save-labels").click();
  });

  window.addEventListener("beforeunload", function (ev) {
    if (isDirty()) { ev.preventDefault(); ev.returnValue = ""; }
  });

  function start() {
    if (!width || !height) { // an old sample without a recorded size: use the image's own
      width = img.naturalWidth; height = img.naturalHeight;
      svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    }
    draw();
  }
  window.addEventListener("resize", function () { if (width && height) drawFrame(); });
  img.addEventListener("error", function () { document.getElementById("frame-missing").hidden = false; });
  if (width && height) draw();
  else if (img.complete && img.naturalWidth) start();
  else img.addEventListener("load", start);
})();
