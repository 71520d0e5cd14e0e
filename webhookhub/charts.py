"""Server-rendered SVG charts for the admin: geometry computed here, drawn by templates."""

WIDTH, HEIGHT, GAP = 720, 160, 4


def hourly_bars(hourly: list[dict]) -> dict:
    """Stacked bars (succeeded below, failed on top) for attempts per hour."""
    peak = max((h["ok"] + h["failed"] for h in hourly), default=0) or 1
    slot = WIDTH / max(len(hourly), 1)
    bars = []
    for i, hour in enumerate(hourly):
        ok_h = HEIGHT * hour["ok"] / peak
        failed_h = HEIGHT * hour["failed"] / peak
        x = i * slot + GAP / 2
        bars.append(
            {
                "x": round(x, 1),
                "width": round(slot - GAP, 1),
                "ok_y": round(HEIGHT - ok_h, 1),
                "ok_h": round(ok_h, 1),
                "failed_y": round(HEIGHT - ok_h - failed_h, 1),
                "failed_h": round(failed_h, 1),
                "label": hour["hour"].strftime("%H:00"),
                "ok": hour["ok"],
                "failed": hour["failed"],
                "show_label": i % 3 == 0,
            }
        )
    return {"bars": bars, "width": WIDTH, "height": HEIGHT, "peak": peak}
