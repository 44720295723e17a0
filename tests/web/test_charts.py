"""Server-rendered SVG charts: valid XML, values placed, active version marked, text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from service.web.charts import Series, bar_sparkline, line_chart

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def test_line_chart_plots_every_known_value_and_marks_active() -> None:
    svg = line_chart(
        ["v1", "v2", "v3"],
        [Series("worker accuracy", [0.89, 0.93, 0.96]), Series("field", [None, 0.8, 0.9])],
        title="Accuracy <per> version",
        marked=2,
        marked_label="active",
    )
    root = _parse(svg)
    dots = root.findall(f"{SVG}circle")
    assert len(dots) == 5  # None values are skipped, not drawn at zero
    titles = [d.find(f"{SVG}title").text for d in dots]
    assert "worker accuracy: 96.0%" in titles and "field: 80.0%" in titles
    assert root.find(f"{SVG}rect[@class='marked']") is not None
    assert root.find(f"{SVG}title").text == "Accuracy <per> version"  # escaped, still parses
    # a higher value is drawn higher (smaller y)
    acc = [float(d.get("cy")) for d in dots if "worker" in d.find(f"{SVG}title").text]
    assert acc[0] > acc[1] > acc[2]


def test_line_chart_axis_zooms_to_data() -> None:
    root = _parse(line_chart(["a", "b"], [Series("s", [0.89, 0.96])], title="t"))
    labels = [t.text for t in root.findall(f"{SVG}text") if t.text and t.text.endswith("%")]
    assert labels[0] == "80%" and labels[-1] == "100%"


def test_line_chart_without_data_still_renders() -> None:
    root = _parse(line_chart(["v1"], [Series("s", [None])], title="empty"))
    assert root.findall(f"{SVG}circle") == []


def test_sparkline_bar_heights_follow_values() -> None:
    root = _parse(bar_sparkline([0, 5, 10], title="trend"))
    bars = root.findall(f"{SVG}rect")
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] < heights[1] < heights[2]
    assert bars[0].get("class") == "bar zero"


def test_line_chart_legend_wraps_instead_of_running_off_the_edge() -> None:
    """Issue 19: with six series (and Chinese labels) the legend was cut at the right edge."""
    from service.web.charts import _label_width

    labels = ["Worker accuracy (benchmark)", "头部（未戴安全帽）AP50（基准）", "Hard hat AP50",
              "Worker accuracy (cross-source)", "Worker accuracy (field hold-out)",
              "Field precision (reviews, 30 or more)"]  # fmt: skip
    series = [Series(label, [0.9, 0.95]) for label in labels]
    root = _parse(line_chart(["siteguard-ppe-v1", "siteguard-ppe-v1.1"], series, title="t"))
    width, height = (float(v) for v in root.get("viewBox").split()[2:])
    legend = [t for t in root.findall(f"{SVG}text") if t.get("class") == "legend"]
    assert [t.text for t in legend] == labels
    for text in legend:
        assert float(text.get("x")) + _label_width(text.text) <= width
        assert float(text.get("y")) <= height
    rows = {t.get("y") for t in legend}
    assert len(rows) >= 2 and height > 300  # wrapped, and the chart grew to hold the rows
    axis = [t for t in root.findall(f"{SVG}text") if t.get("class") == "axis"]
    assert any(t.find(f"{SVG}title") is not None and t.find(f"{SVG}title").text ==
               "siteguard-ppe-v1.1" for t in axis)  # fmt: skip


def test_count_chart_starts_at_zero_with_a_round_top_and_legible_labels() -> None:
    from service.web.charts import count_chart

    labels = [f"d{i}" for i in range(60)]
    root = _parse(
        count_chart(labels, [Series("Gate", [i % 7 for i in range(60)])], title="per day")
    )
    axis = [t.text for t in root.findall(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert axis[0] == "0" and axis[-1] == "10"  # max 6 -> a round 10
    x_labels = [t.text for t in root.findall(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert 2 <= len(x_labels) <= 13 and x_labels[-1] == "d59"  # thinned, the last one kept
    dots = root.findall(f"{SVG}circle")
    assert len(dots) == 60 and dots[3].find(f"{SVG}title").text == "Gate · d3: 3"
