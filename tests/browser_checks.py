"""Page checks the browser tests run in Chromium: text contrast (WCAG 2 AA) and what sticks out sideways.

Both are computed from the rendered page (``getComputedStyle``), not from our CSS source, so a
theme variable, Gradio's own styles and inline colours all count.
"""

from __future__ import annotations

# For every visible element with its own text: the WCAG contrast ratio of its colour against the
# background it is drawn on (the nearest ancestors' background colours, alpha-blended, over white),
# and the AA minimum for its size (3 for large text: 24 px, or 18.66 px bold; else 4.5). Text over
# a background image or gradient, or inside SVG/canvas (charts, drawn by Plotly), is left out here.
CONTRAST_JS = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.backgroundImage && s.backgroundImage !== 'none') return null;
      const c = parse(s.backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let colour = [255, 255, 255, 1];
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const failures = [];
  let checked = 0;
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg, canvas, script, style, noscript')) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const rect = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    if (rect.width === 0 || rect.height === 0 || s.visibility === 'hidden' || s.display === 'none') continue;
    // Hidden from assistive tech, or a disabled control (WCAG exempts inactive components).
    if (el.closest('[aria-hidden=true], :disabled, [disabled]')) continue;
    const bg = background(el);
    if (!bg) continue;
    let fg = parse(s.color);
    if (!fg) continue;
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
    fg = over([fg[0], fg[1], fg[2], fg[3] * opacity], bg);
    const [l1, l2] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(s.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
    const needed = large ? 3 : 4.5;
    checked += 1;
    if (ratio < needed) {
      const id = el.id ? '#' + el.id : '';
      const cls = typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
      failures.push({
        element: el.tagName.toLowerCase() + id + cls,
        text: el.textContent.trim().slice(0, 40),
        ratio: Math.round(ratio * 100) / 100,
        needed, size, color: s.color, background: 'rgb(' + bg.slice(0, 3).map(Math.round).join(',') + ')',
      });
    }
  }
  return { checked, failures };
}
"""

# The page's width against the viewport, and the widest elements that reach past its right edge.
OVERFLOW_JS = """
() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= width + 1) continue;
    let clipped = false;
    for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.overflowX !== 'visible' && e.getBoundingClientRect().right <= width + 1) { clipped = true; break; }
    }
    if (clipped) continue;
    const id = el.id ? '#' + el.id : '';
    const cls = typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).slice(0, 3).join('.') : '';
    wide.push(el.tagName.toLowerCase() + id + cls + ' right=' + Math.round(r.right));
  }
  return { scrollWidth: document.documentElement.scrollWidth, viewport: width, wide: wide.slice(-25) };
}
"""
