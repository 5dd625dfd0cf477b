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
  /** The model that answered (when the page offered a choice). */
  model?: string;
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

/** What the server accepts (serviceInfo), fetched once; null until it answers. */
export interface Limits {
  maxTextChars: number;
  maxUploadBytes: number;
  acceptedMimeTypes: string[];
  /** Loaded models (askImage can choose among those with the vqa task). */
  models: Array<{ name: string; family: string; tasks: string[]; defaultAnswerer: boolean }>;
}

/** Used until serviceInfo answers (the server's defaults). */
export const DEFAULT_LIMITS: Limits = {
  maxTextChars: 500,
  maxUploadBytes: 20 * 1024 * 1024,
  acceptedMimeTypes: ['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/tiff', 'image/avif', 'image/heif'],
  models: [],
};

let limits: Limits | null = null;
const limitListeners = new Set<Listener>();

export function setLimits(next: Limits): void {
  limits = next;
  limitListeners.forEach((l) => l());
}

/** The server's limits (the footer's serviceInfo call sets them); defaults until then. */
export function useLimits(): Limits {
  const [value, setValue] = useState(limits ?? DEFAULT_LIMITS);
  useEffect(() => {
    const l = () => setValue(limits ?? DEFAULT_LIMITS);
    limitListeners.add(l);
    l();
    return () => limitListeners.delete(l);
  }, []);
  return value;
}

/** "PNG, JPEG, WebP, GIF, TIFF, AVIF or HEIF" from content types. */
export function typeNames(mimeTypes: string[]): string {
  const names = mimeTypes.map((t) => {
    const sub = t.replace(/^image\//, '');
    return sub === 'webp' ? 'WebP' : sub.toUpperCase();
  });
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}` : (names[0] ?? '');
}

/**
 * The image of a search by image: kept in memory only (it is not uploaded to the library), so an
 * address #/search-image survives Back and Forward but not a reload.
 */
export interface QueryImage {
  name: string;
  base64: string;
  previewUrl: string;
}

let queryImage: QueryImage | null = null;

export function getQueryImage(): QueryImage | null {
  return queryImage;
}

export async function setQueryImage(file: File): Promise<QueryImage> {
  const dataUrl = await new Promise<string>((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error('Could not read the file'));
    reader.readAsDataURL(file);
  });
  if (queryImage) URL.revokeObjectURL(queryImage.previewUrl);
  queryImage = { name: file.name, base64: dataUrl, previewUrl: URL.createObjectURL(file) };
  return queryImage;
}
