// Two small inline-SVG charts for the statistics page: stacked bars of jobs per hour by
// outcome, and a line of mean run time per hour. Drawn with DOM calls, no library.

import { h } from './format.js';

const NS = 'http://www.w3.org/2000/svg';
const WIDTH = 640;
const HEIGHT = 220;
const PAD = { left: 40, right: 10, top: 10, bottom: 26 };

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  element.append(...children);
  return element;
}

/** Colours of app.css's status variables, for SVG fills. */
const COLOURS = { success: '#16a34a', failed: '#dc2626', cancelled: '#d97706', other: '#9ca3af', line: '#2563eb' };

function frame({ max, step }, unit, buckets) {
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img' });
  for (let value = 0; value <= max + step / 2; value += step) {
    const y = PAD.top + plotH - (plotH * value) / max;
    root.append(
      svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: 'axis', 'stroke-dasharray': value ? '2 3' : '' }),
      svg('text', { x: PAD.left - 6, y: y + 3, 'text-anchor': 'end' }, formatTick(value, unit)),
    );
  }
  const labelEvery = Math.max(1, Math.ceil(buckets.length / 8));
  buckets.forEach((bucket, i) => {
    if (i % labelEvery) return;
    const x = PAD.left + (plotW * (i + 0.5)) / buckets.length;
    const hour = new Date(`${bucket.hour}Z`);
    root.append(svg('text', { x, y: HEIGHT - 8, 'text-anchor': 'middle' },
      hour.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })));
  });
  return { root, plotW, plotH };
}

function formatTick(value, unit) {
  const text = Number.isInteger(value) ? String(value) : String(Number(value.toFixed(2)));
  return unit === 's' ? `${text}s` : text;
}

/**
 * An axis from 0 to at least `value` in at most five round steps (1, 2 or 5 times a
 * power of ten); counts (`whole`) never get fractional steps.
 */
function niceScale(value, whole) {
  if (!(value > 0)) return { max: 1, step: whole ? 1 : 0.5 };
  const rough = Math.max(value, whole ? 1 : 0.1) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 5, 10].map((m) => m * magnitude).find((m) => m >= rough);
  if (whole) step = Math.max(1, Math.round(step));
  return { max: step * Math.max(1, Math.ceil(value / step)), step };
}

export function jobsPerHourChart(buckets) {
  const scale = niceScale(Math.max(...buckets.map((b) => Math.max(b.total, b.success + b.failed + b.cancelled))), true);
  const { max } = scale;
  const { root, plotW, plotH } = frame(scale, '', buckets);
  const slot = plotW / buckets.length;
  const barW = Math.max(2, slot * 0.7);
  buckets.forEach((bucket, i) => {
    const x = PAD.left + slot * i + (slot - barW) / 2;
    let y = PAD.top + plotH;
    for (const key of ['success', 'failed', 'cancelled']) {
      const height = (plotH * bucket[key]) / max;
      if (!height) continue;
      y -= height;
      root.append(svg('rect', { x, y, width: barW, height, fill: COLOURS[key] },
        svg('title', {}, `${bucket.hour} UTC: ${bucket[key]} ${key}`)));
    }
    // Jobs created in the hour, as a tick over the bars.
    if (bucket.total) {
      const ty = PAD.top + plotH - (plotH * bucket.total) / max;
      root.append(svg('line', { x1: x - 1, x2: x + barW + 1, y1: ty, y2: ty, stroke: '#111827', 'stroke-width': 2 },
        svg('title', {}, `${bucket.hour} UTC: ${bucket.total} created`)));
    }
  });
  return h('div', { class: 'chart', id: 'chart-jobs-per-hour' }, root,
    h('div', { class: 'legend' },
      h('span', {}, h('i', { class: 'bg-success' }), 'success'),
      h('span', {}, h('i', { class: 'bg-failed' }), 'failed'),
      h('span', {}, h('i', { class: 'bg-cancelled' }), 'cancelled'),
      h('span', {}, '— created')));
}

export function durationChart(buckets) {
  const values = buckets.map((b) => b.avg_duration_seconds);
  const scale = niceScale(Math.max(0, ...values.filter((v) => v !== null)), false);
  const { max } = scale;
  const { root, plotW, plotH } = frame(scale, 's', buckets);
  const slot = plotW / buckets.length;
  const points = [];
  values.forEach((value, i) => {
    if (value === null) return;
    const x = PAD.left + slot * (i + 0.5);
    const y = PAD.top + plotH - (plotH * value) / max;
    points.push(`${x},${y}`);
    root.append(svg('circle', { cx: x, cy: y, r: 3, fill: COLOURS.line },
      svg('title', {}, `${buckets[i].hour} UTC: ${value.toFixed(1)} s on average`)));
  });
  if (points.length > 1) {
    root.insertBefore(svg('polyline', { points: points.join(' '), fill: 'none', stroke: COLOURS.line, 'stroke-width': 2 }), root.querySelector('circle'));
  }
  return h('div', { class: 'chart', id: 'chart-duration' }, root,
    points.length ? null : h('p', { class: 'muted' }, 'No job finished in this window.'));
}
