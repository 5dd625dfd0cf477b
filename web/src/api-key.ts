/**
 * The API key this tab uses, kept in sessionStorage: it survives reloads, ends with the tab, and is
 * never written to localStorage. The server asks for one with UNAUTHENTICATED (no key, or an
 * unknown one) or FORBIDDEN (a key whose scope is too small); docs/security.md.
 */
const STORAGE_KEY = 'blip-search.apiKey';
/**
 * <img> cannot send Authorization, so the key also travels as a session cookie limited to
 * /images, SameSite=Strict (never sent by other sites' pages); the server reads it there only.
 */
const COOKIE = 'blip_key';

export function currentKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function store(key: string | null): void {
  try {
    if (key) sessionStorage.setItem(STORAGE_KEY, key);
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage disabled: the key lasts for this page only
  }
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = key
    ? `${COOKIE}=${encodeURIComponent(key)}; Path=/images; SameSite=Strict${secure}`
    : `${COOKIE}=; Path=/images; Max-Age=0; SameSite=Strict${secure}`;
}

export function authHeaders(): Record<string, string> {
  const key = currentKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Asks the person for a key; true when one was given (the request is then worth repeating). */
export function askForKey(code: 'UNAUTHENTICATED' | 'FORBIDDEN'): boolean {
  const why =
    code === 'FORBIDDEN'
      ? 'Your API key does not allow this (deleting needs an admin key, changes a write key). Enter another key:'
      : 'This server needs an API key (create one with: npm run cli -- keys create --name NAME --scope read). Enter it:';
  const answer = window.prompt(why)?.trim();
  if (!answer) return false;
  store(answer);
  return true;
}

// A key from an earlier page of this tab: make sure the cookie matches it.
if (typeof document !== 'undefined' && currentKey()) store(currentKey());
