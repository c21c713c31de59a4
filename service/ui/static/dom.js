// Building the page: elements made with text nodes only (no HTML is ever parsed from data),
// number and date formats, and the tables every page uses.

const SVG = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const h = (tag, attrs, ...children) => fill(document.createElement(tag), attrs, children);
export const s = (tag, attrs, ...children) =>
  fill(document.createElementNS(SVG, tag), attrs, children);

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });

export const num = (n) => (n === null || n === undefined ? "—" : integer.format(n));
export const pct = (x) => (x === null || x === undefined ? "—" : percent.format(x));
export const day = (iso) => (iso ? String(iso).slice(0, 10) : "—");
export function when(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? String(iso) : `${t.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}
export const yesNo = (b) => (b ? "yes" : "no");

// Re-render `container` with `nodes`, keeping the keyboard focus on the control that had it
// (controls carry data-focus keys), so a poll that lands while someone tabs loses nothing.
export function replace(container, ...nodes) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.getAttribute("data-focus") : null;
  container.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined));
  if (key) {
    const find = (k) => [...container.querySelectorAll("[data-focus]")].find((n) => n.getAttribute("data-focus") === k && !n.disabled);
    // A pager's button that is no longer there (the last page has no Next): its twin.
    const twin = key.endsWith(":next") ? key.replace(/:next$/, ":prev") : key.replace(/:prev$/, ":next");
    const again = find(key) || find(twin);
    if (again) again.focus();
  }
}

// A table. columns: [{key, label, num, value(row), cell(row), sort}] where value gives what the
// column sorts by and cell what it shows (default: the value, formatted as a number if num).
// options: {caption, sort: {key, dir}, onSort(key)} — columns can be sorted when onSort is given.
export function table(columns, rows, options = {}) {
  const head = h(
    "tr",
    null,
    columns.map((col) => {
      const sorted = options.sort && options.sort.key === col.key;
      const attrs = { scope: "col", class: col.num ? "num" : null };
      if (options.onSort && col.sort !== false) {
        attrs["aria-sort"] = sorted ? (options.sort.dir > 0 ? "ascending" : "descending") : "none";
        return h(
          "th",
          attrs,
          h(
            "button",
            {
              type: "button",
              class: "sort",
              "data-focus": `sort:${col.key}`,
              onclick: () => options.onSort(col.key),
            },
            col.label,
          ),
        );
      }
      return h("th", attrs, col.label);
    }),
  );
  const body = rows.map((row) =>
    h(
      "tr",
      { "data-key": options.rowKey ? options.rowKey(row) : null },
      columns.map((col, i) => {
        const shown = col.cell ? col.cell(row) : col.num ? num(col.value(row)) : col.value(row);
        const attrs = { class: col.num ? "num" : col.className || null, "data-col": col.key };
        return i === 0 ? h("th", { ...attrs, scope: "row" }, shown) : h("td", attrs, shown);
      }),
    ),
  );
  const empty = rows.length
    ? null
    : h("tr", null, h("td", { colspan: columns.length, class: "muted" }, options.empty || "Nothing yet."));
  return h(
    "div",
    { class: "scroll", role: "region", tabindex: "0", "aria-label": options.caption },
    h(
      "table",
      { id: options.id },
      options.caption ? h("caption", null, options.caption) : null,
      h("thead", null, head),
      h("tbody", null, body, empty),
    ),
  );
}

// The columns most tables are made of: a whole number, and a day, each read from the row's own
// field `key`.
export const count = (key, label) => ({ key, label, num: true, value: (r) => r[key] });
export const dayColumn = (key, label) => ({ key, label, value: (r) => r[key], cell: (r) => day(r[key]) });

// Sort rows by a column: numbers (and nulls last) or text.
export function sortRows(rows, column, dir) {
  const value = column.value;
  return [...rows].sort((a, b) => {
    const x = value(a);
    const y = value(b);
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    if (typeof x === "number" && typeof y === "number") return (x - y) * dir;
    return String(x).localeCompare(String(y)) * dir;
  });
}

// Previous/next buttons and where one is.
export function pager(label, { page, pages, onPrev, onNext }) {
  return h(
    "div",
    { class: "pager", role: "group", "aria-label": `${label}: pages` },
    h(
      "button",
      { type: "button", "data-focus": `${label}:prev`, disabled: page <= 1, onclick: onPrev },
      "Previous",
    ),
    h("span", { "data-role": "page" }, pages ? `Page ${page} of ${pages}` : `Page ${page}`),
    h(
      "button",
      { type: "button", "data-focus": `${label}:next`, disabled: pages ? page >= pages : !onNext, onclick: onNext },
      "Next",
    ),
  );
}
