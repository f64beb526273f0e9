"""`summary.html`: one page with the summary video, the timeline and the shots, readable without a server.

The page sits beside `summary.mp4` and plays it by a relative link; the timeline PNG is embedded as
a data: URI, and there are no scripts or external resources, so the folder can be opened from disk,
zipped or copied anywhere. Only the standard library is used (the page is written at the end of
`llmvs summarize`, and the tests render it without models).

    html = render_summary_page(summary, shots, steps, timeline_png)   # `summary.json` dict, CSV rows
"""

from __future__ import annotations

import base64
from html import escape

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; background: #fff; max-width: 1200px;
       margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.facts { color: #555; margin-top: 0; }
video { display: block; width: 720px; max-width: 100%; max-height: 60vh; background: #000; }
img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 14px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f2f2f2; } td.text { text-align: left; }
tr.selected { background: #fbdcbd; } tr.selected td.mark { color: #b35900; font-weight: 600; }
"""


def _seconds(x: float) -> str:
    return f"{x:.2f}"


def render_summary_page(summary: dict, shots: list[dict], steps: list[dict], timeline_png: bytes,
                        video_src: str = "summary.mp4") -> str:
    """The HTML text of the page; `shots`/`steps` are the rows of shots.csv/scores.csv as dicts."""
    name = escape(summary["input"].replace("\\", "/").rsplit("/", 1)[-1])
    facts = (f"{summary['summary_duration_s']:.1f} s of {summary['duration_s']:.1f} s selected: "
             f"{summary['n_selected_shots']} of {summary['n_shots']} shots · "
             + (f"LLM {escape(str(summary['llm']))}" if summary.get("llm") else "no LLM") +
             f" · scores: {escape(str(summary['scorer']))} · captions: {escape(str(summary['captioner']))}")
    read = f'<p class="facts" id="features">Features read: {escape(summary["features_read"])}</p>' \
        if summary.get("features_read") else ""
    shot_rows = "\n".join(
        f'<tr{" class=selected" if s["selected"] else ""}><td>{s["shot"]}</td><td>{s["detected_shot"]}</td>'
        f'<td>{_seconds(s["start_s"])}</td><td>{_seconds(s["end_s"])}</td>'
        f'<td>{_seconds(s["end_s"] - s["start_s"])}</td><td>{s["score"]:.3f}</td>'
        f'<td class=mark>{"selected" if s["selected"] else ""}</td></tr>' for s in shots)
    step_rows = "\n".join(
        f'<tr><td>{r["frame_index"]}</td><td>{_seconds(r["time_s"])}</td><td>{r["score"]:.3f}</td>'
        f'<td class=text>{escape(str(r["caption"]))}</td></tr>' for r in steps)
    png = base64.b64encode(timeline_png).decode("ascii")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Summary of {name}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Summary of {name}</h1>
<p class="facts">{facts}</p>
{read}
<video src="{escape(video_src)}" controls preload="metadata"></video>
<h2>Timeline</h2>
<img src="data:image/png;base64,{png}" alt="importance score over time, selected shots shaded">
<h2>Shots</h2>
<table id="shots">
<thead><tr><th>shot</th><th>detected shot</th><th>start (s)</th><th>end (s)</th><th>length (s)</th>
<th>score</th><th></th></tr></thead>
<tbody>
{shot_rows}
</tbody>
</table>
<details>
<summary>Captions and scores of the {len(steps)} sampled frames</summary>
<table id="steps">
<thead><tr><th>frame</th><th>time (s)</th><th>score</th><th>caption</th></tr></thead>
<tbody>
{step_rows}
</tbody>
</table>
</details>
<p>Files: <a href="summary.mp4">summary.mp4</a> · <a href="shots.csv">shots.csv</a> ·
<a href="scores.csv">scores.csv</a> · <a href="timeline.png">timeline.png</a> ·
<a href="summary.json">summary.json</a></p>
</body>
</html>
"""
