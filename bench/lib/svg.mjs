// Minimal SVG charts (grouped bars, lines on log or linear axes) for
// bench/plot.mjs: no dependencies, deterministic output for the same input.

const W = 640;
const H = 360;
const M = { top: 40, right: 150, bottom: 56, left: 70 };
const COLORS = ['#2b6cb0', '#dd6b20', '#38a169', '#805ad5', '#c53030', '#718096'];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function fmt(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 10_000) return `${Math.round(v / 1000)}k`;
  if (a >= 1000) return `${(v / 1000).toFixed(v % 1000 === 0 ? 0 : 1)}k`;
  if (Number.isInteger(v)) return String(v);
  if (a >= 10) return String(Math.round(v));
  if (a >= 1) return v.toFixed(1);
  return v.toFixed(2);
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function frame(title, yLabel, xLabel, body) {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2 - M.right / 2 + M.left / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text transform="translate(16 ${M.top + (H - M.top - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    xLabel ? `<text x="${M.left + (W - M.left - M.right) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>` : '',
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function legend(names) {
  return names.map(
    (n, i) =>
      `<rect x="${W - M.right + 14}" y="${M.top + i * 20}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>` +
      `<text x="${W - M.right + 32}" y="${M.top + i * 20 + 10}">${esc(n)}</text>`,
  );
}

/** Grouped bar chart: categories on x, one bar per series in each category. */
export function barChart({ title, yLabel, categories, series, refLine }) {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const max = niceMax(Math.max(...series.flatMap((s) => s.values), refLine?.value ?? 0));
  const y = (v) => M.top + plotH - (v / max) * plotH;
  const body = [];
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    body.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#e2e8f0"/>`);
    body.push(`<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  const groupW = plotW / categories.length;
  const barW = Math.min(48, (groupW * 0.8) / series.length);
  categories.forEach((c, ci) => {
    const x0 = M.left + ci * groupW + (groupW - barW * series.length) / 2;
    series.forEach((s, si) => {
      const v = s.values[ci];
      if (v === undefined || v === null) return;
      const x = x0 + si * barW;
      body.push(`<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(M.top + plotH - y(v)).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"/>`);
      body.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(y(v) - 4).toFixed(1)}" text-anchor="middle" font-size="10">${fmt(v)}</text>`);
    });
    body.push(`<text x="${(M.left + ci * groupW + groupW / 2).toFixed(1)}" y="${M.top + plotH + 18}" text-anchor="middle">${esc(c)}</text>`);
  });
  if (refLine) {
    body.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${y(refLine.value)}" y2="${y(refLine.value)}" stroke="#c53030" stroke-dasharray="6 4"/>`);
    body.push(`<text x="${M.left + plotW}" y="${y(refLine.value) - 4}" text-anchor="end" fill="#c53030">${esc(refLine.label)}</text>`);
  }
  body.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + plotH}" stroke="#4a5568"/>`);
  body.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${M.top + plotH}" y2="${M.top + plotH}" stroke="#4a5568"/>`);
  return frame(title, yLabel, '', [...body, ...legend(series.map((s) => s.name))]);
}

/** Line chart of series over numeric x; log10 axes when asked. */
export function lineChart({ title, xLabel, yLabel, series, logX = false, logY = false, refLine }) {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).concat(refLine ? [refLine.value] : []);
  const tx = (v) => (logX ? Math.log10(v) : v);
  const ty = (v) => (logY ? Math.log10(Math.max(v, 1e-3)) : v);
  const xMin = logX ? Math.floor(Math.log10(Math.min(...xs))) : 0;
  const xMax = logX ? Math.ceil(Math.log10(Math.max(...xs))) : niceMax(Math.max(...xs));
  const yMin = logY ? Math.floor(Math.log10(Math.max(Math.min(...ys), 1e-3))) : 0;
  const yMax = logY ? Math.ceil(Math.log10(Math.max(...ys))) : niceMax(Math.max(...ys));
  const X = (v) => M.left + ((tx(v) - xMin) / (xMax - xMin || 1)) * plotW;
  const Y = (v) => M.top + plotH - ((ty(v) - yMin) / (yMax - yMin || 1)) * plotH;
  const body = [];
  const yTicks = logY ? Array.from({ length: yMax - yMin + 1 }, (_, i) => 10 ** (yMin + i)) : Array.from({ length: 6 }, (_, i) => (yMax * i) / 5);
  for (const v of yTicks) {
    body.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#e2e8f0"/>`);
    body.push(`<text x="${M.left - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`);
  }
  const xTicks = logX ? [...new Set(xs)].sort((a, b) => a - b) : Array.from({ length: 6 }, (_, i) => (xMax * i) / 5);
  for (const v of xTicks) {
    body.push(`<text x="${X(v).toFixed(1)}" y="${M.top + plotH + 18}" text-anchor="middle">${fmt(v)}</text>`);
  }
  if (refLine) {
    body.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${Y(refLine.value).toFixed(1)}" y2="${Y(refLine.value).toFixed(1)}" stroke="#c53030" stroke-dasharray="6 4"/>`);
    body.push(`<text x="${M.left + plotW}" y="${(Y(refLine.value) - 4).toFixed(1)}" text-anchor="end" fill="#c53030">${esc(refLine.label)}</text>`);
  }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ');
    body.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>`);
    for (const p of s.points) body.push(`<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="3" fill="${color}"/>`);
  });
  body.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + plotH}" stroke="#4a5568"/>`);
  body.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${M.top + plotH}" y2="${M.top + plotH}" stroke="#4a5568"/>`);
  return frame(title, yLabel, xLabel, [...body, ...legend(series.map((s) => s.name))]);
}
