// Charts as plain SVG: each has a text alternative (role="img" and a label) and, where it holds
// more than a label can say, its numbers as a table under a disclosure.

import { count, h, num, pct, s, table } from "./dom.js";

const DAY_MS = 86400000;
const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
export const METRICS = {
  commits: "Commits",
  additions_lines: "Lines added",
  deletions_lines: "Lines deleted",
  contributors: "Contributors",
};

function nextStart(start, granularity) {
  const t = new Date(`${start}T00:00:00Z`);
  if (granularity === "week") return new Date(t.getTime() + 7 * DAY_MS).toISOString().slice(0, 10);
  t.setUTCMonth(t.getUTCMonth() + 1);
  return t.toISOString().slice(0, 10);
}

// The series with its quiet periods filled in with zeros, oldest first.
export function contiguous(periods, granularity) {
  if (!periods.length) return [];
  const byStart = new Map(periods.map((p) => [p.period_start, p]));
  const out = [];
  const last = periods[periods.length - 1].period_start;
  for (let at = periods[0].period_start; at <= last; at = nextStart(at, granularity)) {
    out.push(byStart.get(at) || { period_start: at, commits: 0, additions_lines: 0, deletions_lines: 0, contributors: 0 });
    if (out.length > 20000) break;
  }
  return out;
}

export function activityChart(periods, granularity, metric) {
  const series = contiguous(periods, granularity);
  const label = METRICS[metric];
  const unit = granularity === "week" ? "week" : "month";
  if (!series.length) return h("p", { class: "muted" }, "No commits yet.");
  const max = Math.max(1, ...series.map((p) => p[metric]));
  const width = Math.max(series.length * 6, 300);
  const height = 120;
  const step = width / series.length;
  const total = series.reduce((sum, p) => sum + p[metric], 0);
  const busiest = series.reduce((a, b) => (b[metric] > a[metric] ? b : a));
  const svg = s(
    "svg",
    {
      class: "chart bars",
      viewBox: `0 0 ${width} ${height}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": `${label} per ${unit} from ${series[0].period_start} to ${series[series.length - 1].period_start}: ${num(total)} in all, at most ${num(busiest[metric])} (${unit} of ${busiest.period_start}).`,
    },
    s("line", { class: "grid", x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5 }),
    series.map((p, i) => {
      const tall = (p[metric] / max) * (height - 4);
      return s(
        "rect",
        {
          class: `bar-${metric}`,
          x: (i * step + step * 0.1).toFixed(2),
          y: (height - tall).toFixed(2),
          width: (step * 0.8).toFixed(2),
          height: tall.toFixed(2),
        },
        s("title", null, `${p.period_start}: ${num(p[metric])}`),
      );
    }),
  );
  const rows = periods.slice().reverse();
  return h(
    "figure",
    { class: "chart-frame", "data-chart": "activity" },
    svg,
    h(
      "div",
      { class: "axis" },
      h("span", null, series[0].period_start),
      h("span", null, `highest: ${num(max)}`),
      h("span", null, series[series.length - 1].period_start),
    ),
    h(
      "details",
      null,
      h("summary", null, `Show the ${rows.length} active ${unit}s as a table`),
      table(
        [
          { key: "period_start", label: granularity === "week" ? "Week of" : "Month", value: (p) => p.period_start },
          count("commits", "Commits"),
          count("additions_lines", "Lines added"),
          count("deletions_lines", "Lines deleted"),
          count("authored_additions_lines", "Authored added"),
          count("authored_deletions_lines", "Authored deleted"),
          count("contributors", "Contributors"),
        ],
        rows,
        { caption: `Activity per ${unit}`, id: "activity-table" },
      ),
    ),
  );
}

export function punchCard(cells) {
  const grid = new Map(cells.map((c) => [`${c.weekday}:${c.hour}`, c.commits]));
  const max = Math.max(1, ...cells.map((c) => c.commits));
  const total = cells.reduce((sum, c) => sum + c.commits, 0);
  const left = 34;
  const cell = 22;
  const top = 16;
  const busiest = cells.reduce((a, b) => (b.commits > (a ? a.commits : -1) ? b : a), null);
  const summary = busiest
    ? `Commits by weekday and hour of the author's day: ${num(total)} in all, most on ${WEEKDAYS[busiest.weekday]}s at ${busiest.hour}:00 (${num(busiest.commits)}).`
    : "No commits yet.";
  const marks = [];
  for (let hour = 0; hour < 24; hour += 3) {
    marks.push(s("text", { x: left + hour * cell + cell / 2, y: 11, "text-anchor": "middle" }, `${hour}h`));
  }
  const rows = WEEKDAYS.map((name, weekday) => [
    s("text", { x: 0, y: top + weekday * cell + cell / 2 + 4 }, name.slice(0, 3)),
    Array.from({ length: 24 }, (_, hour) => {
      const n = grid.get(`${weekday}:${hour}`) || 0;
      if (!n) return null;
      return s(
        "circle",
        {
          class: "dot",
          cx: left + hour * cell + cell / 2,
          cy: top + weekday * cell + cell / 2,
          r: (Math.sqrt(n / max) * (cell / 2 - 1)).toFixed(2),
          "data-weekday": weekday,
          "data-hour": hour,
          "data-commits": n,
        },
        s("title", null, `${WEEKDAYS[weekday]} ${hour}:00–${hour}:59: ${num(n)} commits`),
      );
    }),
  ]);
  return h(
    "figure",
    { class: "chart-frame narrow" },
    s(
      "svg",
      { class: "chart", viewBox: `0 0 ${left + 24 * cell} ${top + 7 * cell}`, role: "img", "aria-label": summary },
      marks,
      rows,
    ),
    h("figcaption", { class: "muted small" }, summary),
  );
}

// A bar split in shares, with its legend: items [{label, value, extra}].
export function shareBar(items, what, caption) {
  const total = items.reduce((sum, i) => sum + i.value, 0);
  if (!total) return h("p", { class: "muted" }, `No ${what} yet.`);
  const shown = items.slice(0, 8);
  const rest = items.slice(8).reduce((sum, i) => sum + i.value, 0);
  if (rest) shown.push({ label: "Other", value: rest, other: true });
  let x = 0;
  const parts = shown.map((item, i) => {
    const w = (item.value / total) * 1000;
    const rect = s(
      "rect",
      { class: item.other ? "c8" : `c${i}`, x: x.toFixed(2), y: 0, width: w.toFixed(2), height: 20 },
      s("title", null, `${item.label}: ${pct(item.value / total)}`),
    );
    x += w;
    return rect;
  });
  const label = shown.map((i) => `${i.label} ${pct(i.value / total)}`).join(", ");
  return h(
    "figure",
    { class: "share" },
    s("svg", { class: "chart", viewBox: "0 0 1000 20", preserveAspectRatio: "none", role: "img", "aria-label": `${caption}: ${label}` }, parts),
    h(
      "ul",
      { class: "legend" },
      shown.map((item, i) =>
        h(
          "li",
          { "data-label": item.label },
          s("svg", { viewBox: "0 0 10 10", "aria-hidden": "true" }, s("rect", { class: item.other ? "c8" : `c${i}`, width: 10, height: 10 })),
          `${item.label} ${pct(item.value / total)}`,
          item.extra ? h("span", { class: "muted" }, ` (${item.extra})`) : null,
        ),
      ),
    ),
  );
}

const AGE_LABELS = {
  "<1m": "under a month",
  "1-6m": "1 to 6 months",
  "6-12m": "6 to 12 months",
  "1-2y": "1 to 2 years",
  ">2y": "over 2 years",
};

export function codeAge(buckets) {
  const total = buckets.reduce((sum, b) => sum + b.lines, 0);
  const max = Math.max(1, ...buckets.map((b) => b.lines));
  const rowH = 24;
  const svg = s(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 600 ${buckets.length * rowH}`,
      role: "img",
      "aria-label": `Lines at the head by the age of the commit that wrote them: ${buckets
        .map((b) => `${AGE_LABELS[b.bucket] || b.bucket} ${num(b.lines)}`)
        .join(", ")}.`,
    },
    buckets.map((b, i) => [
      s("text", { x: 0, y: i * rowH + 16 }, AGE_LABELS[b.bucket] || b.bucket),
      s("rect", { class: "age", x: 110, y: i * rowH + 4, width: ((b.lines / max) * 380).toFixed(2), height: rowH - 8 }),
      s("text", { x: 115 + (b.lines / max) * 380, y: i * rowH + 16 }, `${num(b.lines)} (${pct(total ? b.lines / total : 0)})`),
    ]),
  );
  return h("figure", { class: "chart-frame narrow" }, svg);
}
