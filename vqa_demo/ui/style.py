"""The app's look: a Gradio theme with system fonts (no web-font downloads) and a little CSS."""

from __future__ import annotations

import gradio as gr

CSS = """
.gradio-container { max-width: 1280px !important; margin: 0 auto; }
#app-header h1 { margin-bottom: 0.1em; }
#app-header p { color: var(--body-text-color-subdued); margin-top: 0; }
.status-box { min-height: 1.5em; }
.status-box p { margin: 0.2em 0; }
.status-error { border-left: 4px solid #d9534f; padding-left: 0.6em; }
.status-ok { border-left: 4px solid #54a24b; padding-left: 0.6em; }
.variant-row .form { gap: 0.4em; }
.option-buttons button { min-width: 0; }
.section-title h3 { margin: 0.6em 0 0.2em 0; }
.cond-gen-box table { font-size: 0.92em; }
.small-note { color: var(--body-text-color-subdued); font-size: 0.9em; }
/* Small images (diagrams, the tiny default's 64 px renders) fill their frame instead of sitting in a corner. */
.fill-image img { width: 100% !important; height: 100% !important; object-fit: contain; }
#errors-table [role="gridcell"] { cursor: pointer; }
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(
        primary_hue="indigo",
        secondary_hue="slate",
        neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )
