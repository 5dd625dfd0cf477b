import { useEffect, useState } from 'preact/hooks';

/** Tiny shared state: a collection version (bumped by uploads and deletions) and toasts. */
type Listener = () => void;

let version = 0;
const versionListeners = new Set<Listener>();
const removed = new Set<string>();

let pending: ReturnType<typeof setTimeout> | undefined;

/** Lists refetch once per burst of changes (a batch of uploads finishing), not once per file. */
export function collectionChanged(removedId?: string): void {
  if (removedId) removed.add(removedId);
  version++;
  clearTimeout(pending);
  pending = setTimeout(() => versionListeners.forEach((l) => l()), removedId ? 0 : 400);
}

export function isRemoved(id: string): boolean {
  return removed.has(id);
}

export function useCollectionVersion(): number {
  const [v, setV] = useState(version);
  useEffect(() => {
    const l = () => setV(version);
    versionListeners.add(l);
    return () => versionListeners.delete(l);
  }, []);
  return v;
}

export interface Toast {
  id: number;
  text: string;
  tone: 'info' | 'success' | 'error';
}

let toasts: Toast[] = [];
let nextToast = 1;
const toastListeners = new Set<Listener>();
const emitToasts = () => toastListeners.forEach((l) => l());

export function toast(text: string, tone: Toast['tone'] = 'info'): void {
  const t = { id: nextToast++, text, tone };
  toasts = [...toasts, t];
  emitToasts();
  setTimeout(() => dismissToast(t.id), 5000);
}

export function dismissToast(id: number): void {
  toasts = toasts.filter((t) => t.id !== id);
  emitToasts();
}

export function useToasts(): Toast[] {
  const [list, setList] = useState(toasts);
  useEffect(() => {
    const l = () => setList(toasts);
    toastListeners.add(l);
    return () => toastListeners.delete(l);
  }, []);
  return list;
}

/** Questions and answers asked so far, per image, kept for the browser session. */
export interface QA {
  question: string;
  answer: string;
}

const QA_KEY = 'blip-search:qa';

function readQa(): Record<string, QA[]> {
  try {
    return JSON.parse(sessionStorage.getItem(QA_KEY) ?? '{}') as Record<string, QA[]>;
  } catch {
    return {};
  }
}

export function qaHistory(id: string): QA[] {
  return readQa()[id] ?? [];
}

export function saveQaHistory(id: string, list: QA[]): void {
  try {
    const all = readQa();
    all[id] = list.slice(-50);
    sessionStorage.setItem(QA_KEY, JSON.stringify(all));
  } catch {
    // storage full or disabled: the history then lasts as long as the page
  }
}
