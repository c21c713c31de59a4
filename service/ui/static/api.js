// The read API as the dashboard uses it: the bearer token kept in this tab's session storage,
// and every answer kept with its ETag, so that a poll sends If-None-Match and a 304 costs
// nothing but the round trip.

const TOKEN = "gitstats.token";
const ORG = "gitstats.org";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const session = {
  token: () => sessionStorage.getItem(TOKEN),
  org: () => sessionStorage.getItem(ORG),
  setOrg(org) {
    sessionStorage.setItem(ORG, org);
  },
  signIn(token, org) {
    sessionStorage.setItem(TOKEN, token);
    if (org) sessionStorage.setItem(ORG, org);
    known.clear();
  },
  signOut() {
    sessionStorage.removeItem(TOKEN);
    known.clear();
  },
  // Settings a test or a curious user may set in session storage.
  number(name, fallback, least) {
    const value = Number(sessionStorage.getItem(`gitstats.${name}`));
    return Number.isFinite(value) && value >= least ? value : fallback;
  },
};

// path -> {etag, status, body, retryAfter}: the last answer of each address.
const known = new Map();
const KNOWN_MAX = 500;

function remember(path, entry) {
  known.delete(path);
  known.set(path, entry);
  if (known.size > KNOWN_MAX) known.delete(known.keys().next().value);
}

// GET an API path; {status: 200 or 202, body, changed, retryAfter}. A 304 gives the body kept
// from before with changed = false. Anything else is thrown as an ApiError with the API's
// own message.
export async function get(path, token = session.token()) {
  if (!token) throw new ApiError(401, "Sign in with a token to see the dashboard.");
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  const before = token === session.token() ? known.get(path) : undefined;
  if (before) headers["If-None-Match"] = before.etag;
  let response;
  try {
    // no-store: the page does its own revalidation, and sees the 304s it asked for.
    response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  } catch (error) {
    throw new ApiError(0, "The service could not be reached. It is tried again shortly.");
  }
  if (response.status === 304 && before) return { ...before, changed: false };
  if (response.status === 200 || response.status === 202) {
    const entry = {
      etag: response.headers.get("ETag"),
      status: response.status,
      body: await response.json(),
      retryAfter: Number(response.headers.get("Retry-After")) || null,
    };
    if (entry.etag && token === session.token()) remember(path, entry);
    return { ...entry, changed: true };
  }
  let message = `The API answered ${response.status}.`;
  try {
    const body = await response.json();
    if (body && typeof body.message === "string") message = body.message;
  } catch (error) {
    // not JSON: keep the status line
  }
  throw new ApiError(response.status, message);
}

export function query(path, params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== null && v !== undefined);
  if (!pairs.length) return path;
  return `${path}?${pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")}`;
}

export const orgPath = (org) => `/api/v1/orgs/${encodeURIComponent(org)}/analytics`;
export const codebasePath = (id) => `/api/v1/codebases/${id}/analytics`;
