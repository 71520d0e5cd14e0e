"""Server-rendered SVG charts for the admin: geometry computed here, drawn by templates.

Coordinates are in the drawing's own units (the SVG scales to the width of its box):
a plot area right of the y axis labels and above the x axis labels. The live charts of
the dashboard are drawn the same way by its script (static/webhookhub/dashboard.js).
"""

import math

WIDTH, HEIGHT = 1200, 200
LEFT, TOP, BOTTOM = 56, 10, 24  # room for the y labels, the top label, the x labels
GAP = 4


def nice_ticks(peak: float, count: int = 4) -> list[float]:
    """Axis values from 0 to at least `peak` in round steps (1, 2, 2.5 or 5 × 10ⁿ);
    whole numbers for counts of at least `count`."""
    if peak <= 0:
        return [0, 1]
    raw = peak / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    top = math.ceil(peak / step - 1e-9) * step
    ticks = [round(i * step, 10) for i in range(round(top / step) + 1)]
    return [int(t) if float(t).is_integer() else t for t in ticks]


def hourly_bars(hourly: list[dict]) -> dict:
    """Stacked bars (succeeded below, failed on top) for attempts per hour, with a y
    axis of round values and an hour label every 3 hours."""
    peak = max((h["ok"] + h["failed"] for h in hourly), default=0)
    ticks = nice_ticks(peak)
    top = ticks[-1] or 1
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(hourly), 1)

    def y(value: float) -> float:
        return round(TOP + plot_h - plot_h * value / top, 1)

    bars = []
    for i, hour in enumerate(hourly):
        x = LEFT + i * slot + GAP / 2
        bars.append(
            {
                "x": round(x, 1),
                "width": round(slot - GAP, 1),
                "ok_y": y(hour["ok"]),
                "ok_h": round(y(0) - y(hour["ok"]), 1),
                "failed_y": y(hour["ok"] + hour["failed"]),
                "failed_h": round(y(hour["ok"]) - y(hour["ok"] + hour["failed"]), 1),
                "label": hour["hour"].strftime("%H:00"),
                "label_x": round(x + (slot - GAP) / 2, 1),
                "ok": hour["ok"],
                "failed": hour["failed"],
                "show_label": i % 3 == 0,
            }
        )
    return {
        "bars": bars,
        "ticks": [{"value": t, "y": y(t)} for t in ticks],
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH,
        "axis_y": y(0),
        "label_y": HEIGHT - 6,
        "peak": peak,
        "empty": peak == 0,
    }
