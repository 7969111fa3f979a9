"""The app's look: a Gradio theme with system fonts (no web-font downloads), a little CSS and JS."""

from __future__ import annotations

import gradio as gr

# Secondary text is slate-600 on light backgrounds (7.6:1 on white) and slate-300 on dark ones:
# the theme's own subdued grey measured 2.45:1 (WCAG AA asks 4.5:1 for text this size).
CSS = """
:root { --muted-text: #475569; }
.dark { --muted-text: #cbd5e1; }
#image-alert-text:empty, #answer-progress:empty { display: none; }
#image-alert-text { color: #b42318; font-weight: 600; }
button[role="tab"].selected { color: var(--primary-700) !important; }
/* Long paths and names wrap instead of widening the page. */
.prose code { overflow-wrap: anywhere; white-space: pre-wrap; }
/* Phones: every row stacks, nothing keeps a desktop minimum width, tables scroll inside their box
   (words in headings stay whole), so no tab is wider than the screen. */
/* The page's own flex boxes may shrink below their content (outside @media: Gradio scopes those). */
.gradio-container, .gradio-container > .main, .gradio-container > .main > .wrap, main.contain { min-width: 0 !important; max-width: 100vw; }
/* Gradio scopes rules inside @media to its page (".gradio-container-<version> .contain"): no prefix here. */
@media (max-width: 640px) {
  .row { flex-wrap: wrap !important; }
  .row > *, .column { flex-basis: 100% !important; }
  /* Flex and grid items default to their content's width as a minimum; that widened the page. */
  *:not(th):not(td):not(th *):not(td *) { min-width: 0 !important; }
  .form > *, .variant-row > * { flex: 1 1 100% !important; }
  .table-wrap table { width: max-content !important; min-width: 100%; }
  .js-plotly-plot, .js-plotly-plot .svg-container, .tabitem, .tab-container { max-width: 100% !important; }
  .table-wrap, .table-container { overflow-x: auto !important; max-width: 100%; }
  table th, table td, table th *, table td * { word-break: normal !important; overflow-wrap: normal !important; }
  .prose table { display: block; overflow-x: auto; max-width: 100%; }
  .prose code { white-space: pre-wrap !important; overflow-wrap: anywhere !important; }
  /* Anything still wider (a chart drawn before the tab was shown) scrolls inside its tab. */
  .tabitem { overflow-x: auto; }
  #examples-gallery .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; }
}
.gradio-container { max-width: 1280px !important; margin: 0 auto; }
#app-header h1 { margin-bottom: 0.1em; }
#app-header p { margin-top: 0; }
.status-box { min-height: 1.5em; }
.status-box p { margin: 0.2em 0; }
.status-error { border-left: 4px solid #d9534f; padding-left: 0.6em; }
.status-ok { border-left: 4px solid #54a24b; padding-left: 0.6em; }
.variant-row .form { gap: 0.4em; }
.option-buttons button { min-width: 0; }
.section-title h3 { margin: 0.6em 0 0.2em 0; }
.cond-gen-box table { font-size: 0.92em; }
.small-note { color: var(--muted-text); font-size: 0.9em; }
/* Small images (diagrams, the tiny default's 64 px renders) fill their frame instead of sitting in a corner. */
.fill-image img { width: 100% !important; height: 100% !important; object-fit: contain; }
#errors-table [role="gridcell"] { cursor: pointer; }
#errors-confusion .js-plotly-plot .nsewdrag, #compare-family .js-plotly-plot .nsewdrag { cursor: pointer; }
#compare-mcnemar td:nth-child(3), #compare-mcnemar td:nth-child(4) { cursor: pointer; text-decoration: underline dotted; }
.status-box p + p { color: var(--muted-text); font-size: 0.9em; }
/* Every example in view: no inner scroll box; short captions on the thumbnail, the whole text on hover. */
#examples-gallery .grid-wrap { max-height: none !important; overflow: visible !important; }
#examples-gallery .caption-label { max-width: 100%; font-size: 0.75em; }
.domain-note p { border-left: 4px solid #f0ad4e; padding-left: 0.6em; }
/* The legend's rows share columns (label, low end, bar, high end) so the image and text bars line up;
   on a phone the label takes a line of its own above its bar. */
.heat-legend-box { display: grid; grid-template-columns: max-content auto 1fr auto; gap: 0.2em 0.5em;
  align-items: center; font-size: 0.85em; margin: 0.3em 0; max-width: 48rem; }
.heat-legend { display: contents; }
.heat-legend-box > .small-note { grid-column: 1 / -1; }
.heat-legend .bar { min-width: 4em; height: 1em; border-radius: 2px; border: 1px solid #999; position: relative; }
.heat-legend .bar .zero { position: absolute; left: 50%; top: -0.1em; transform: translateX(-50%);
  font-size: 0.8em; color: #000; }
@media (max-width: 600px) {
  .heat-legend-box { grid-template-columns: auto 1fr auto; }
  .heat-legend .what { grid-column: 1 / -1; }
}
.heat-tokens { line-height: 2em; font-family: var(--font-mono); font-size: 0.9em; }
/* Chips are inline blocks so a long prompt wraps between them on a phone instead of running off. */
.heat-tokens span { display: inline-block; padding: 0 0.1em; margin-right: 2px; border-radius: 3px;
  white-space: pre; line-height: 1.6em; }
.heat-tokens .answer-mark { color: var(--muted-text); font-family: var(--font); }
"""

# The gallery renders captions only as text on the thumbnail (cut with an ellipsis) and as the
# image's alt; this copies the full caption into each thumbnail's title, so hovering shows it.
JS = """
() => {
  const titled = () => document.querySelectorAll('#examples-gallery button.thumbnail-item').forEach((b) => {
    const img = b.querySelector('img');
    if (img && img.alt && b.title !== img.alt) b.title = img.alt;
  });
  // Text alternatives: Gradio renders these pictures with alt="" and Plotly charts as bare SVG.
  const described = () => {
    document.querySelectorAll('img:not([alt]), img[alt=""]').forEach((img) => {
      const box = img.closest('[id]');
      if (!box) return;
      if (box.id === 'ask-image') img.alt = 'The image you asked about';
      else if (box.id.includes('heatmap') || box.id.includes('attribution')) img.alt = 'Heatmap over the image; its legend is below it';
      else if (box.id === 'errors-image') img.alt = 'The selected validation example';
    });
    document.querySelectorAll('.js-plotly-plot:not([aria-label])').forEach((plot) => {
      const label = plot.closest('.block')?.querySelector('[data-testid=block-label]')?.textContent?.trim();
      plot.setAttribute('role', 'img');
      plot.setAttribute('aria-label', 'Chart: ' + (label || plot.querySelector('.gtitle')?.textContent || 'see the table beside it'));
    });
  };
  // Linked views: a click on a confusion cell or a per-family bar goes to the server through the
  // hidden #link-go button (vqa_demo.ui.tabs.error_links checks what it names).
  const linked = () => {
    for (const [box, chart] of [['errors-confusion', 'confusion'], ['compare-family', 'family']]) {
      const plot = document.querySelector('#' + box + ' .js-plotly-plot');
      // Plotly makes a new event emitter when it redraws a chart from scratch: listen on each one once.
      if (!plot || !plot.on || !plot._ev || plot.vqaLinkedTo === plot._ev) continue;
      plot.vqaLinkedTo = plot._ev;
      plot.on('plotly_click', (data) => {
        const point = data && data.points && data.points[0];
        if (!point) return;
        window.vqaLinkRequest = JSON.stringify(chart === 'confusion'
          ? { chart, x: point.x, y: point.y }
          : { chart, variant: point.data.name, family: point.x });
        document.querySelector('#link-go')?.click();
      });
    }
  };
  let pending = false;
  new MutationObserver(() => {
    titled();
    if (!pending) { pending = true; setTimeout(() => { pending = false; described(); linked(); }, 300); }
  }).observe(document.body, { childList: true, subtree: true });
  titled();
  described();
  // The address holds the view (vqa_demo.ui.url_state): rewrite it in place, never add to history.
  window.vqaSetView = (values) => {
    const url = new URL(window.location.href);
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined || value === null || value === '') url.searchParams.delete(key);
      else url.searchParams.set(key, String(value));
    }
    window.history.replaceState(null, '', url.pathname + url.search + url.hash);
  };
  // While Errors is shown, its selected example and explained variant follow into the address.
  window.vqaSyncErrorsView = () => {
    const tab = document.querySelector('button[role="tab"][aria-selected="true"]');
    if (!tab || tab.textContent.trim() !== 'Errors') return;
    const example = document.querySelector('#errors-example-id textarea, #errors-example-id input')?.value || '';
    const variant = example ? (document.querySelector('#errors-variant input')?.value || '') : '';
    const now = new URLSearchParams(window.location.search);
    if ((now.get('example') || '') !== example || (now.get('variant') || '') !== variant) {
      window.vqaSetView({ tab: 'errors', example, variant });
    }
  };
  setInterval(window.vqaSyncErrorsView, 500);
  // A file over the upload limit is named under the image before it is sent: the server's refusal
  // would only be a corner toast (vqa_demo.ui.tabs.ask_freshness).
(() => {
  const alertBox = () => document.getElementById('image-alert-text');
  const check = (files) => {
    const box = alertBox();
    if (!box || !files || !files.length) return;
    const limit = Number(box.dataset.maxBytes);
    const big = [...files].find((f) => f.size > limit);
    box.textContent = big
      ? `⚠ ${big.name} is ${(big.size / 1048576).toFixed(1)} MB, over the ${(limit / 1048576).toFixed(1)} MB limit: ` +
        'choose a smaller image (or a compressed PNG or JPEG of it).'
      : '';
  };
  document.addEventListener('change', (e) => {
    if (e.target.matches && e.target.matches('#ask-image input[type=file]')) check(e.target.files);
  }, true);
  document.addEventListener('drop', (e) => {
    if (e.target.closest && e.target.closest('#ask-image') && e.dataTransfer) check(e.dataTransfer.files);
  }, true);
})();
}
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(
        primary_hue="indigo",
        secondary_hue="slate",
        neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    ).set(
        # WCAG AA contrast for helper text and labels (checked in the browser by the tests).
        body_text_color_subdued="*neutral_600",
        body_text_color_subdued_dark="*neutral_300",
        block_info_text_color="*neutral_600",
        block_info_text_color_dark="*neutral_300",
        block_label_text_color="*neutral_700",
        block_title_text_color="*neutral_700",
        input_placeholder_color="*neutral_500",
        # Indigo 500 under white text measured 4.47:1; 600 is 6.3:1.
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
        checkbox_background_color_selected="*primary_600",
        checkbox_label_background_fill_selected="*primary_600",
    )
