// The gitstats dashboard: pages drawn from the public read API, polled with If-None-Match and
// updated in place. /ui/signin, /ui/orgs/{org}, /ui/codebases/{id}; the token is kept in this
// tab's session storage only (a demo link passes it in the address's fragment, which is never
// sent to the server, and the page takes it out of the address at once).

import { ApiError, codebasePath, get, orgPath, query, session } from "./api.js";
import { METRICS, activityChart, codeAge, punchCard, shareBar } from "./charts.js";
import { count, day, dayColumn, h, num, pager, pct, replace, sortRows, table, when, yesNo } from "./dom.js";

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const live = document.getElementById("live");
const bannerBox = document.getElementById("banner");
const signOutButton = document.getElementById("signout");

const pollMs = () => session.number("pollMs", 5000, 100);
const pageSize = () => Math.min(100, session.number("pageSize", 25, 1));
const apiLimit = () => Math.min(100, session.number("apiLimit", 100, 1));
const NOTICE = "gitstats.notice";
const NEXT = "gitstats.next";

let generation = 0;
let timer = null;
let polls = 0;

// --- chrome ------------------------------------------------------------------------------------

function banner(message) {
  bannerBox.hidden = !message;
  bannerBox.textContent = message || "";
}

function setCrumbs(...links) {
  replace(crumbs, links.map(([label, href]) => (href ? h("a", { href, "data-internal": true }, label) : h("span", null, label))));
}

function setTitle(title) {
  document.title = title ? `${title} · gitstats` : "gitstats";
}

function navigate(path, replaceIt = false) {
  history[replaceIt ? "replaceState" : "pushState"](null, "", path);
  route();
}

function signedOut(message) {
  session.signOut();
  sessionStorage.setItem(NOTICE, message);
  sessionStorage.setItem(NEXT, location.pathname);
  navigate("/ui/signin", true);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-internal]");
  if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", route);
signOutButton.addEventListener("click", () => {
  session.signOut();
  sessionStorage.removeItem(NEXT);
  navigate("/ui/signin");
});

// --- routing and polling -------------------------------------------------------------------------

function route() {
  generation += 1;
  clearTimeout(timer);
  banner(null);
  live.textContent = "";
  const path = location.pathname;
  signOutButton.hidden = !session.token();
  if (path === "/ui/signin") return signInPage();
  if (!session.token()) {
    sessionStorage.setItem(NEXT, path);
    return navigate("/ui/signin", true);
  }
  let match = path.match(/^\/ui\/orgs\/([^/]+)$/);
  if (match) return run(orgPage(decodeURIComponent(match[1])));
  match = path.match(/^\/ui\/codebases\/([0-9]+)$/);
  if (match) return run(codebasePage(match[1]));
  const org = session.org();
  return navigate(org ? `/ui/orgs/${encodeURIComponent(org)}` : "/ui/signin", true);
}

// Draw a page, then poll it: each poll asks again with If-None-Match and redraws what changed.
// A 404 is said in place of the page, and polled too: an org shows up once its first codebase
// is analyzed. Polls pause while the tab is hidden.
async function run(page) {
  const mine = generation;
  const notice = h("div", { id: "notice" });
  replace(main, notice, page.el);
  const tick = async () => {
    if (mine !== generation) return;
    if (document.hidden) {
      document.addEventListener("visibilitychange", tick, { once: true });
      return;
    }
    try {
      const changed = await page.refresh();
      if (mine !== generation) return;
      banner(null);
      replace(notice);
      page.el.hidden = false;
      if (changed) live.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (mine !== generation) return;
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 401) return signedOut(`Your token was not accepted: ${error.message}`);
      if (error.status === 404) {
        live.textContent = "";
        page.el.hidden = true;
        replace(
          notice,
          h("h1", null, `Nothing to show for this ${page.missing}`),
          h("p", null, `The API answered: ${error.message}. It does not exist, this token may not see it, or nothing of it has been analyzed yet; this page keeps asking.`),
        );
      } else banner(error.message);
    }
    polls += 1;
    main.setAttribute("data-polls", String(polls));
    if (mine === generation) timer = setTimeout(tick, pollMs());
  };
  await tick();
}

// --- sign-in -----------------------------------------------------------------------------------

function signInPage() {
  setTitle("Sign in");
  setCrumbs();
  signOutButton.hidden = true;
  const notice = sessionStorage.getItem(NOTICE);
  sessionStorage.removeItem(NOTICE);
  const message = h("p", { id: "signin-message", class: "error", role: "alert" }, notice || "");
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, "aria-describedby": "token-hint" });
  const org = h("input", { id: "org", name: "org", type: "text", autocomplete: "organization", required: true, value: session.org() || "", "aria-describedby": "org-hint" });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "signin", novalidate: true },
    h("label", { for: "token" }, "Token", h("span", { class: "hint", id: "token-hint" }, "An admin token of this service, or your GitHub user token for this App. It stays in this browser tab.")),
    token,
    h("label", { for: "org" }, "Organisation", h("span", { class: "hint", id: "org-hint" }, "Its GitHub login (the demo's is local).")),
    org,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const given = token.value.trim();
    const login = org.value.trim();
    if (!given || !login) {
      message.textContent = !given ? "Enter a token." : "Enter the organisation's login.";
      (!given ? token : org).focus();
      return;
    }
    submit.disabled = true;
    message.textContent = "";
    try {
      await get(`${orgPath(login)}/summary`, given);
      session.signIn(given, login);
      const next = sessionStorage.getItem(NEXT);
      sessionStorage.removeItem(NEXT);
      navigate(next && next !== "/ui/signin" && next !== "/ui/" ? next : `/ui/orgs/${encodeURIComponent(login)}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 401) message.textContent = `This token was not accepted (401): ${error.message}`;
      else if (error.status === 404) message.textContent = `This token sees no organisation “${login}”.`;
      else message.textContent = error.message;
      (error.status === 404 ? org : token).focus();
    } finally {
      submit.disabled = false;
    }
  });
  replace(
    main,
    h("h1", null, "Sign in"),
    h("p", null, "The dashboard shows what the read API answers to your token: live figures of every codebase of an organisation."),
    message,
    form,
  );
  token.focus();
}

// --- shared pieces -------------------------------------------------------------------------------

// A figure, and under it a second one in words: sub = [words before, value, words after, key].
function tile(label, value, key, sub) {
  return h(
    "div",
    { class: "tile" },
    h("dt", null, label),
    h("dd", { "data-tile": key }, value),
    sub ? h("dd", { class: "sub" }, sub[0], h("span", { "data-tile": sub[3] }, sub[1]), sub[2]) : null,
  );
}

// The figures an org summary and a codebase overview both have, all-in over authored.
function authoredTiles(d) {
  return [
    ["Commits", "total_commits", "commits"],
    ["Contributors", "total_contributors", "contributors"],
    ["Lines added", "additions_lines", "additions_lines"],
    ["Lines deleted", "deletions_lines", "deletions_lines"],
  ].map(([label, key, own]) => tile(label, num(d[key]), key, ["authored ", num(d.authored[own]), "", `authored.${own}`]));
}

const languageBar = (languages) =>
  shareBar(languages.map((l) => ({ label: l.language, value: l.bytes, extra: `${num(l.files)} files` })), "languages", "Bytes by language");

// A name with a badge after it when `badge` is given.
const tagged = (name, badge) => [name, badge ? [" ", h("span", { class: "badge tag" }, badge)] : null];

function section(id, title, ...content) {
  return h("section", { id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), ...content);
}

function stateBadge(state) {
  return h("span", { class: `badge state-${state}`, "data-state": state }, state);
}

const PHASES = {
  queued: "waiting for a worker",
  fetch: "fetching",
  extract: "extracting commits",
  aggregate: "aggregating",
  export: "exporting",
  provenance: "tracing line provenance",
  publish: "publishing",
};

function statusBox(status) {
  const progress = status.progress;
  const running = status.state === "running" || status.state === "queued";
  const run = status.last_run;
  return h(
    "div",
    { class: "statusbox", id: "status", "data-state": status.state },
    h(
      "p",
      null,
      "Sync: ",
      stateBadge(status.state),
      status.phase ? ` ${PHASES[status.phase] || status.phase}` : "",
      progress ? ` — ${num(progress.done)} of ${num(progress.total)}` : "",
    ),
    running && progress
      ? h("progress", { value: progress.done, max: Math.max(progress.total, 1), "aria-label": `${PHASES[status.phase] || "progress"}: ${progress.done} of ${progress.total}` })
      : null,
    run
      ? h(
          "p",
          { class: "muted small" },
          `Last run (${run.trigger}): ${when(run.finished_at || run.started_at)}`,
          run.duration_ms !== null && run.duration_ms !== undefined ? `, ${num(run.duration_ms)} ms` : "",
          `, ${num(run.commits_added)} commits added`,
          run.commits_removed ? `, ${num(run.commits_removed)} removed` : "",
          status.last_success_at ? `. Last success ${when(status.last_success_at)}.` : ".",
        )
      : null,
    status.last_error ? h("p", { class: "error" }, `Last error (${when(status.last_error.at)}): ${status.last_error.message}`) : null,
    status.notices && status.notices.length ? h("ul", { class: "small" }, status.notices.map((n) => h("li", null, n))) : null,
  );
}

// A list the API pages: cursors kept so one can go back; back to the first page when the
// document changes (a cursor of an older version starts over at the first page anyway).
class ApiPages {
  constructor() {
    this.reset();
  }
  reset() {
    this.cursors = [null];
    this.index = 0;
  }
  get cursor() {
    return this.cursors[this.index];
  }
  view(label, next, redraw) {
    return pager(label, {
      page: this.index + 1,
      pages: next ? null : this.index + 1,
      onPrev: () => {
        this.index -= 1;
        redraw();
      },
      onNext: next
        ? () => {
            this.cursors.length = this.index + 1;
            this.cursors.push(next);
            this.index += 1;
            redraw();
          }
        : null,
    });
  }
}

// --- the org page --------------------------------------------------------------------------------

const CODEBASE_COLUMNS = [
  { key: "full_name", label: "Codebase", value: (r) => r.full_name, cell: (r) => h("a", { href: `/ui/codebases/${r.codebase_id}`, "data-internal": true }, r.full_name), className: "name" },
  { key: "state", label: "State", value: (r) => r.state, cell: (r) => stateBadge(r.state) },
  { key: "primary_language", label: "Language", value: (r) => r.primary_language, cell: (r) => r.primary_language || "—" },
  count("total_commits", "Commits"),
  count("total_contributors", "Contributors"),
  count("total_branches", "Branches"),
  count("total_churn", "Churn"),
  count("total_lines", "Lines"),
  dayColumn("last_commit_at", "Last commit"),
];

function orgPage(org) {
  session.setOrg(org);
  setTitle(org);
  setCrumbs([org, `/ui/orgs/${encodeURIComponent(org)}`]);
  const heading = h("h1", null, `Organisation ${org}`);
  const tiles = h("dl", { class: "tiles", id: "org-tiles" });
  const languages = h("div", { id: "org-languages" });
  const hotspots = h("div", { id: "org-hotspots" });
  const list = h("div", { id: "codebases" });
  const el = h(
    "div",
    null,
    heading,
    tiles,
    section("languages", "Languages", languages),
    section("codebases-section", "Codebases", list),
    section("hotspots", "Hotspots", h("p", { class: "muted small" }, "The files changed most often lately, weighted by their size."), hotspots),
  );
  const state = { rows: [], sort: { key: "total_commits", dir: -1 }, page: 1 };
  const base = orgPath(org);

  function drawList() {
    const column = CODEBASE_COLUMNS.find((c) => c.key === state.sort.key);
    const rows = sortRows(state.rows, column, state.sort.dir);
    const size = pageSize();
    const pages = Math.max(1, Math.ceil(rows.length / size));
    state.page = Math.min(state.page, pages);
    const shown = rows.slice((state.page - 1) * size, state.page * size);
    replace(
      list,
      table(CODEBASE_COLUMNS, shown, {
        caption: `${num(rows.length)} codebases, sorted by ${column.label.toLowerCase()}`,
        id: "codebases-table",
        rowKey: (r) => r.codebase_id,
        sort: state.sort,
        onSort: (key) => {
          state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === "full_name" ? 1 : -1 };
          state.page = 1;
          drawList();
        },
      }),
      pages > 1
        ? pager("Codebases", {
            page: state.page,
            pages,
            onPrev: () => {
              state.page -= 1;
              drawList();
            },
            onNext: () => {
              state.page += 1;
              drawList();
            },
          })
        : null,
    );
  }

  async function refresh() {
    const summary = await get(`${base}/summary`);
    if (summary.changed) {
      const s = summary.body;
      replace(
        tiles,
        tile("Codebases", num(s.total_codebases), "total_codebases"),
        authoredTiles(s),
        tile("Churn", num(s.total_churn), "total_churn"),
        tile("Lines", num(s.total_lines), "total_lines"),
        tile("Languages", num(s.languages.length), "languages"),
      );
      replace(languages, languageBar(s.languages));
      replace(
        hotspots,
        table(
          [
            { key: "path", label: "File", value: (r) => r.path, className: "name" },
            { key: "full_name", label: "Codebase", value: (r) => r.full_name, cell: (r) => h("a", { href: `/ui/codebases/${r.codebase_id}`, "data-internal": true }, r.full_name) },
            count("hotspot", "Hotspot"),
            count("recent_commits", "Recent commits"),
            count("lines", "Lines"),
          ],
          s.top_hotspots || [],
          { caption: "Top hotspots", id: "hotspots-table" },
        ),
      );
    }
    // The list is walked through the API's pages; a poll asks for the first page only, and
    // walks again when it changed.
    const first = await get(query(`${base}/codebases`, { limit: apiLimit() }));
    if (first.changed) {
      const rows = [...first.body.codebases];
      for (let cursor = first.body.next_cursor; cursor; ) {
        const next = await get(query(`${base}/codebases`, { limit: apiLimit(), cursor }));
        rows.push(...next.body.codebases);
        cursor = next.body.next_cursor;
      }
      state.rows = rows;
      drawList();
    }
    return summary.changed || first.changed;
  }
  return { el, refresh, missing: "organisation" };
}

// --- the codebase page ---------------------------------------------------------------------------

function codebasePage(id) {
  setTitle(`Codebase ${id}`);
  const base = codebasePath(id);
  const heading = h("h1", null, `Codebase ${id}`);
  const statusArea = h("div", { id: "status-area" });
  const pending = h("div", { id: "pending" });
  const tiles = h("dl", { class: "tiles", id: "overview-tiles" });
  const activity = h("div", { id: "activity-chart" });
  const punch = h("div", { id: "punch-card" });
  const languages = h("div", { id: "languages-bar" });
  const contributors = h("div", { id: "contributors" });
  const branches = h("div", { id: "branches" });
  const paths = h("div", { id: "paths" });
  const teams = h("div", { id: "teams" });
  const age = h("div", { id: "code-age" });
  const ui = { granularity: "week", metric: "commits", prefix: "", sort: "churn", note: null };
  ui.prefix = (new URLSearchParams(location.search).get("path") || "").replace(/^\/+|\/+$/g, "");
  const people = new ApiPages();
  const branchPages = new ApiPages();
  const pathPages = new ApiPages();
  const granularity = h(
    "fieldset",
    null,
    h("legend", null, "Per"),
    [["week", "Week"], ["month", "Month"]].map(([value, label]) =>
      h("label", null, h("input", { type: "radio", name: "granularity", value, checked: value === ui.granularity, "data-focus": `granularity:${value}`, onchange: () => { ui.granularity = value; redraw(); } }), ` ${label}`),
    ),
  );
  const metric = h(
    "select",
    { id: "metric", onchange: (e) => { ui.metric = e.target.value; redraw(); } },
    Object.entries(METRICS).map(([value, label]) => h("option", { value }, label)),
  );
  const sortPaths = h(
    "select",
    { id: "paths-sort", onchange: (e) => { ui.sort = e.target.value; pathPages.reset(); redraw(); } },
    [["churn", "churn"], ["hotspot", "hotspot"], ["recent", "recent commits"]].map(([value, label]) => h("option", { value }, label)),
  );
  const full = h(
    "div",
    { id: "dashboard", hidden: true },
    h(
      "nav",
      { "aria-label": "Sections" },
      h("ul", { class: "toc" }, [["overview", "Overview"], ["activity", "Activity"], ["languages", "Languages"], ["contributors-section", "Contributors"], ["branches-section", "Branches"], ["paths-section", "Paths"], ["teams-section", "Teams"], ["age", "Code age"]].map(([to, label]) => h("li", null, h("a", { href: `#${to}` }, label)))),
    ),
    section("overview", "Overview", h("p", { class: "muted small" }, "All-in figures count every commit; authored ones leave out bots, ignored revisions, and vendored and generated files."), tiles),
    section("activity", "Activity", h("div", { class: "controls" }, granularity, h("label", { for: "metric" }, "Show ", metric)), activity, h("h3", null, "Punch card"), punch),
    section("languages", "Languages", languages),
    section("contributors-section", "Contributors", contributors),
    section("branches-section", "Branches", branches),
    section("paths-section", "Paths", h("div", { class: "controls" }, h("label", { for: "paths-sort" }, "Sort by ", sortPaths)), paths),
    section("teams-section", "Teams", teams),
    section("age", "Code age", age),
  );
  const el = h("div", null, heading, statusArea, pending, full);

  const seen = {};
  // Polls and redraws (a control changed) take turns, so that a slower answer never draws over
  // a newer one.
  let turns = Promise.resolve();
  function inTurn(forced) {
    const next = turns.then(() => refresh(forced));
    turns = next.catch(() => {});
    return next;
  }
  function redraw() {
    inTurn(true).catch((error) => banner(error.message));
  }

  // Whether `answer` is new to the section `name` (a poll's 304 is not).
  function once(name, answer) {
    if (seen[name] === answer.etag) return false;
    seen[name] = answer.etag;
    return true;
  }

  async function refresh(forced = false) {
    let changed = false;
    const status = await get(`${base}/status`);
    if (status.changed) replace(statusArea, statusBox(status.body));
    const overview = await get(`${base}/overview`);
    if (overview.status === 202) {
      full.hidden = true;
      const failed = overview.body.state === "failed";
      replace(
        pending,
        h("h2", null, failed ? "The first analysis failed" : "Being analyzed"),
        h("p", null, failed ? "It is tried again; the error is below. This page fills in by itself when it succeeds." : "The first analysis of this codebase is running. This page fills in by itself when it is done."),
        statusBox(overview.body),
      );
      return status.changed || overview.changed;
    }
    replace(pending);
    full.hidden = false;
    if (once("overview", overview)) {
      changed = true;
      drawOverview(overview.body);
    }
    const activityAnswer = await get(query(`${base}/activity`, { granularity: ui.granularity }));
    if (once(`activity`, activityAnswer) || forced) {
      changed = true;
      replace(activity, activityChart(activityAnswer.body.periods, ui.granularity, ui.metric));
      replace(punch, punchCard(activityAnswer.body.punch_card));
    }
    changed = (await pagedSection("contributors", people, `${base}/ownership`, {}, contributors, drawPeople, forced)) || changed;
    changed = (await pagedSection("branches", branchPages, `${base}/branches`, {}, branches, drawBranches, forced)) || changed;
    changed = (await pathsSection(forced)) || changed;
    const teamsAnswer = await get(`${base}/teams`);
    if (once("teams", teamsAnswer)) {
      changed = true;
      drawTeams(teamsAnswer.body);
    }
    return changed || status.changed;
  }

  // The explorer's directory; back to the root when a push took the directory away (404).
  async function pathsSection(forced) {
    const show = () => pagedSection("paths", pathPages, `${base}/paths`, { prefix: ui.prefix, sort: ui.sort }, paths, drawPaths, forced);
    try {
      return await show();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404 || !ui.prefix) throw error;
      ui.note = `There is no directory ${ui.prefix} (any more): this is the root.`;
      goTo("", false);
      return show();
    }
  }

  // One page of a list the API pages; drawn again when it changed, or when a control asks.
  // When the list's first page changed (a push landed), back to the first page.
  async function pagedSection(name, pages, path, params, where, draw, forced) {
    const first = await get(query(path, { ...params, limit: pageSize() }));
    const firstKey = `${name}:first:${JSON.stringify(params)}`;
    if (pages.index > 0 && seen[firstKey] !== undefined && seen[firstKey] !== first.etag) pages.reset();
    seen[firstKey] = first.etag;
    const answer = pages.index === 0 ? first : await get(query(path, { ...params, limit: pageSize(), cursor: pages.cursor }));
    const key = `${JSON.stringify(params)}:${pages.index}:${answer.etag}`;
    if (seen[name] === key && !forced) return false;
    seen[name] = key;
    draw(where, answer.body, pages, name);
    return true;
  }

  function drawOverview(o) {
    setTitle(o.full_name);
    const org = o.full_name.split("/")[0];
    setCrumbs([org, `/ui/orgs/${encodeURIComponent(org)}`], [o.full_name, `/ui/codebases/${id}`]);
    replace(heading, o.full_name);
    heading.append(h("span", { class: "muted small" }, o.default_branch ? `  ${o.default_branch} at ${(o.head_sha || "").slice(0, 12)}` : ""));
    replace(
      tiles,
      authoredTiles(o),
      tile("Churn", num(o.total_churn), "total_churn", ["net ", num(o.net_sloc), "", "net_sloc"]),
      tile("Lines at head", num(o.total_lines), "total_lines", ["", num(o.total_files), " files", "total_files"]),
      tile("Bytes at head", num(o.total_bytes), "total_bytes"),
      tile("Branches", num(o.total_branches), "total_branches"),
      tile("Merge commits", num(o.merge_commits), "merge_commits"),
      tile("First commit", day(o.first_commit_at), "first_commit_at"),
      tile("Last commit", day(o.last_commit_at), "last_commit_at"),
    );
    replace(languages, languageBar(o.languages));
    replace(age, o.code_age ? codeAge(o.code_age) : h("p", { class: "muted" }, "Line ages are being traced; they show here when they are known."));
  }

  function drawPeople(where, page, pages, name) {
    replace(
      where,
      table(
        [
          { key: "name", label: "Name", value: (r) => r.name, cell: (r) => tagged(r.name, r.is_bot && "bot"), className: "name" },
          count("commits", "Commits"),
          count("co_authored_commits", "Co-authored"),
          count("additions_lines", "Lines added"),
          count("deletions_lines", "Lines deleted"),
          count("authored_additions_lines", "Authored added"),
          count("authored_deletions_lines", "Authored deleted"),
          { key: "share_of_churn", label: "Share of churn", num: true, value: (r) => r.share_of_churn, cell: (r) => pct(r.share_of_churn) },
          count("surviving_lines", "Surviving lines"),
          { key: "share_of_lines", label: "Share of lines", num: true, value: (r) => r.share_of_lines, cell: (r) => pct(r.share_of_lines) },
          dayColumn("last_commit_at", "Last commit"),
        ],
        page.contributors,
        { caption: `${num(page.total_contributors)} contributors, by commits`, id: "contributors-table" },
      ),
      pages.view(name, page.next_cursor, redraw),
    );
  }

  function drawBranches(where, page, pages, name) {
    replace(
      where,
      table(
        [
          { key: "name", label: "Branch", value: (r) => r.name, cell: (r) => tagged(r.name, r.is_default && "default"), className: "name" },
          count("ahead", "Ahead"),
          count("behind", "Behind"),
          { key: "merged", label: "Merged", value: (r) => yesNo(r.merged) },
          { key: "stale", label: "Stale", value: (r) => yesNo(r.stale) },
          dayColumn("last_commit_at", "Last commit"),
          { key: "last_commit_author", label: "By", value: (r) => r.last_commit_author },
        ],
        page.branches,
        { caption: `${num(page.total_branches)} branches, ahead and behind ${page.default_branch || "the default branch"}`, id: "branches-table" },
      ),
      pages.view(name, page.next_cursor, redraw),
    );
  }

  // Into a directory of the explorer; the address keeps it (?path=), so a link can share it.
  function goTo(prefix, draw = true) {
    ui.prefix = prefix;
    pathPages.reset();
    const address = new URL(location.href);
    if (prefix) address.searchParams.set("path", prefix);
    else address.searchParams.delete("path");
    history.replaceState(null, "", address.pathname + address.search + address.hash);
    if (draw) redraw();
  }

  // Where the explorer is: the keyboard's focus lands here after going into a directory.
  const here = (path, label) => h("span", { "aria-current": "location", tabindex: "-1", "data-focus": `dir:${path}` }, label);

  function drawPaths(where, page, pages, name) {
    const parts = ui.prefix ? ui.prefix.split("/") : [];
    const trail = h(
      "ol",
      { class: "crumbs-inline", "aria-label": "Directory" },
      h("li", null, parts.length ? h("button", { type: "button", class: "link", "data-focus": "dir:", onclick: () => goTo("") }, "(root)") : here("", "(root)")),
      parts.map((part, i) => {
        const to = parts.slice(0, i + 1).join("/");
        return h("li", null, i === parts.length - 1 ? here(to, part) : h("button", { type: "button", class: "link", "data-focus": `dir:${to}`, onclick: () => goTo(to) }, part));
      }),
    );
    const entry = page.entry;
    const nameOf = (p) => (ui.prefix ? p.path.slice(ui.prefix.length + 1) : p.path);
    const note = ui.note ? h("p", { class: "error", role: "status" }, ui.note) : null;
    ui.note = null;
    replace(
      where,
      note,
      trail,
      h("p", { class: "muted small", id: "paths-entry" }, `${ui.prefix || "(root)"}: ${num(entry.commits)} commits, ${num(entry.lines)} lines, ${num(entry.contributors)} contributors, bus factor ${num(entry.bus_factor)}`),
      table(
        [
          { key: "path", label: "Name", value: nameOf, className: "name", cell: (p) => (p.kind === "dir" ? h("button", { type: "button", class: "link", "data-focus": `dir:${p.path}`, "aria-label": `${nameOf(p)}/ (directory)`, onclick: () => goTo(p.path) }, `${nameOf(p)}/`) : nameOf(p)) },
          count("commits", "Commits"),
          count("additions_lines", "Lines added"),
          count("deletions_lines", "Lines deleted"),
          count("lines", "Lines"),
          count("contributors", "Contributors"),
          count("recent_commits", "Recent commits"),
          count("hotspot", "Hotspot"),
          count("bus_factor", "Bus factor"),
          count("surviving_lines", "Surviving lines"),
          { key: "top_owner", label: "Top owner", value: (p) => (p.top_owners.length ? p.top_owners[0].name : "—") },
        ],
        page.paths,
        { caption: `In ${ui.prefix || "the root"}, by ${ui.sort === "recent" ? "recent commits" : ui.sort}`, id: "paths-table", rowKey: (p) => p.path },
      ),
      pages.view(name, page.next_cursor, redraw),
    );
  }

  function drawTeams(t) {
    const columns = [
      { key: "owner", label: "Owner", value: (r) => r.owner, className: "name" },
      count("files", "Files"),
      count("lines", "Lines"),
      count("commits", "Commits"),
      count("contributors", "Contributors"),
      count("bus_factor", "Bus factor"),
      count("surviving_lines", "Surviving lines"),
      count("bus_factor_lines", "Bus factor (lines)"),
      { key: "top", label: "Top contributor", value: (r) => (r.top_contributors.length ? r.top_contributors[0].name : "—") },
    ];
    const rows = [...t.teams, { ...t.unowned, owner: "(unowned)" }];
    replace(
      teams,
      t.codeowners
        ? h("p", { class: "muted small" }, `Owners from ${t.codeowners.path}.`)
        : h("p", { class: "muted small" }, "No CODEOWNERS file: every path is unowned."),
      t.codeowners && t.codeowners.problems.length
        ? h("ul", { class: "small" }, t.codeowners.problems.map((p) => h("li", null, `line ${p.line ?? "?"}: ${p.kind}`)))
        : null,
      table(columns, rows, { caption: `${num(t.teams.length)} owners`, id: "teams-table", rowKey: (r) => r.owner }),
    );
  }

  return { el, refresh: () => inTurn(false), missing: "codebase" };
}

// --- start -----------------------------------------------------------------------------------------

// A link that signs in (the demo prints one): #token=...&org=..., taken out of the address.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  session.signIn(fragment.get("token"), fragment.get("org"));
  const org = fragment.get("org");
  history.replaceState(null, "", org ? `/ui/orgs/${encodeURIComponent(org)}` : "/ui/");
}
route();
