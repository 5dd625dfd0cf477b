import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, describeError, isRetryable, uploadImage, type ImageNode, type UploadHandle } from '../api';
import { bytes, sentence } from '../format';
import { href } from '../router';
import { collectionChanged, typeNames, useLimits } from '../store';
import { MatchMeter, Spinner } from './ui';

type Status = 'ready' | 'queued' | 'uploading' | 'processing' | 'new' | 'duplicate' | 'rejected';

interface Item {
  key: number;
  file: File;
  /** Publisher's alt text for this file, sent with it; the server stores its ITM match score. */
  altText: string;
  status: Status;
  progress: number;
  image?: ImageNode;
  error?: { message: string; code: string; retryable: boolean };
}

const CONCURRENCY = 2;
let nextKey = 1;

/**
 * Upload panel: pick or drop several files; each waits with its own alt text field until
 * "Upload" sends the batch, then gets a progress bar and the server's verdict. A file that failed
 * for a reason worth retrying (network, server busy, an alt text to shorten) can be sent again.
 */
export function Uploader({ open, onClose, droppedFiles }: { open: boolean; onClose: () => void; droppedFiles: File[] | null }) {
  const limits = useLimits();
  const [items, setItems] = useState<Item[]>([]);
  const [dragging, setDragging] = useState(false);
  const inputRef = useRef<HTMLInputElement>(null);
  const handles = useRef(new Map<number, UploadHandle>());
  const panelRef = useRef<HTMLElement>(null);

  const update = (key: number, patch: Partial<Item>) => setItems((list) => list.map((it) => (it.key === key ? { ...it, ...patch } : it)));

  const addFiles = (files: Iterable<File>) => {
    const added = Array.from(files, (file): Item => ({ key: nextKey++, file, altText: '', status: 'ready', progress: 0 }));
    if (added.length) setItems((list) => [...list, ...added]);
  };

  useEffect(() => {
    if (droppedFiles?.length) addFiles(droppedFiles);
    // Once per drop (addFiles is new at every render).
  }, [droppedFiles]);

  useEffect(() => {
    if (open) panelRef.current?.focus();
  }, [open]);

  // The queue: start uploads while fewer than CONCURRENCY run.
  useEffect(() => {
    const running = items.filter((i) => i.status === 'uploading' || i.status === 'processing').length;
    const queued = items.filter((i) => i.status === 'queued').sort((a, b) => a.key - b.key); // oldest first
    for (const item of queued.slice(0, Math.max(0, CONCURRENCY - running))) {
      update(item.key, { status: 'uploading', progress: 0, error: undefined });
      const onProgress = (p: number) => update(item.key, p >= 1 ? { progress: 1, status: 'processing' } : { progress: p });
      const altText = item.altText.trim();
      const handle = uploadImage(item.file, onProgress, altText ? { altText } : {});
      handles.current.set(item.key, handle);
      handle.promise
        .then(
          (res) => {
            update(item.key, { status: res.created ? 'new' : 'duplicate', progress: 1, image: res.image });
            if (res.created) collectionChanged();
          },
          (e: unknown) => {
            const code = e instanceof ApiError ? e.code : 'ERROR';
            // An input problem (an alt text too long) is worth a retry once the input is fixed.
            update(item.key, { status: 'rejected', error: { message: describeError(e), code, retryable: isRetryable(e) || code === 'BAD_USER_INPUT' } });
          },
        )
        .finally(() => handles.current.delete(item.key));
    }
  }, [items]);

  const ready = items.filter((i) => i.status === 'ready');
  const tooLong = ready.some((i) => i.altText.trim().length > limits.maxTextChars);
  const active = items.filter((i) => i.status === 'queued' || i.status === 'uploading' || i.status === 'processing').length;
  const summary = summarize(items);
  const accept = [...limits.acceptedMimeTypes, '.heic', '.heif', '.avif', '.tif', '.tiff'].join(',');

  if (!open) return null;
  return (
    <section class="upload-panel" aria-labelledby="upload-title" tabIndex={-1} ref={panelRef} data-testid="upload-panel">
      <div class="upload-head">
        <div>
          <h2 id="upload-title">Add images</h2>
          <p class="muted" data-testid="accepted-types">
            {typeNames(limits.acceptedMimeTypes)}, up to {bytes(limits.maxUploadBytes)} each. Each image is captioned and indexed as it arrives.
          </p>
        </div>
        <button type="button" class="btn btn-ghost btn-icon" onClick={onClose} aria-label="Close the upload panel">
          <svg viewBox="0 0 20 20" class="icon" aria-hidden="true">
            <path d="M5 5l10 10M15 5 5 15" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
          </svg>
        </button>
      </div>
      <div
        class={`dropzone${dragging ? ' is-over' : ''}`}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          e.stopPropagation();
          setDragging(false);
          if (e.dataTransfer?.files) addFiles(e.dataTransfer.files);
        }}
      >
        <svg viewBox="0 0 48 48" class="dropzone-art" aria-hidden="true">
          <path d="M24 31V13m0 0-7 7m7-7 7 7" fill="none" stroke="currentColor" stroke-width="3" stroke-linecap="round" stroke-linejoin="round" />
          <path d="M10 30v6a4 4 0 0 0 4 4h20a4 4 0 0 0 4-4v-6" fill="none" stroke="currentColor" stroke-width="3" stroke-linecap="round" />
        </svg>
        <p>
          <strong>Drop images here</strong> or
        </p>
        <button type="button" class="btn btn-secondary" onClick={() => inputRef.current?.click()}>
          Choose files
        </button>
        <input
          ref={inputRef}
          id="file-input"
          class="visually-hidden"
          type="file"
          accept={accept}
          multiple
          tabIndex={-1}
          aria-label="Choose image files to upload"
          onChange={(e) => {
            const input = e.target as HTMLInputElement;
            if (input.files) addFiles(input.files);
            input.value = '';
          }}
        />
      </div>
      {items.length > 0 && (
        <>
          <div class="upload-summary" aria-live="polite" data-testid="upload-summary">
            <span>{summary}</span>
            {ready.length > 0 && (
              <button
                type="button"
                class="btn btn-primary btn-small"
                disabled={tooLong}
                onClick={() => setItems((list) => list.map((it) => (it.status === 'ready' ? { ...it, status: 'queued' } : it)))}
              >
                Upload {ready.length} {ready.length === 1 ? 'image' : 'images'}
              </button>
            )}
            {active === 0 && ready.length === 0 && (
              <button type="button" class="btn btn-ghost btn-small" onClick={() => setItems([])}>
                Clear list
              </button>
            )}
          </div>
          <ul class="upload-list" data-testid="upload-list">
            {items.map((item) => (
              <UploadRow
                key={item.key}
                item={item}
                maxChars={limits.maxTextChars}
                onAltText={(altText) => update(item.key, { altText })}
                onRemove={() => setItems((list) => list.filter((it) => it.key !== item.key))}
                onRetry={() => update(item.key, { status: 'queued', error: undefined, progress: 0 })}
                onCancel={() => handles.current.get(item.key)?.abort()}
              />
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function summarize(items: Item[]): string {
  const count = (s: Status) => items.filter((i) => i.status === s).length;
  const busy = count('queued') + count('uploading') + count('processing');
  const parts: string[] = [];
  if (count('ready')) parts.push(`${count('ready')} ready to upload`);
  if (busy) parts.push(`${busy} in progress`);
  if (count('new')) parts.push(`${count('new')} added`);
  if (count('duplicate')) parts.push(`${count('duplicate')} already in your library`);
  if (count('rejected')) parts.push(`${count('rejected')} rejected`);
  return parts.join(' · ');
}

const LABEL: Record<Status, string> = {
  ready: 'Ready',
  queued: 'Waiting',
  uploading: 'Uploading',
  processing: 'Captioning and indexing',
  new: 'Added',
  duplicate: 'Already in library',
  rejected: 'Rejected',
};

function UploadRow(props: {
  item: Item;
  maxChars: number;
  onAltText: (text: string) => void;
  onRemove: () => void;
  onRetry: () => void;
  onCancel: () => void;
}) {
  const { item, maxChars } = props;
  const pct = Math.round(item.progress * 100);
  const done = item.status === 'new' || item.status === 'duplicate';
  const editable = item.status === 'ready' || (item.status === 'rejected' && item.error?.code === 'BAD_USER_INPUT');
  const fieldId = `alt-${item.key}`;
  const length = item.altText.trim().length;
  return (
    <li class={`upload-item status-${item.status}`} data-testid="upload-item" data-status={item.status}>
      <div class="upload-thumb">{item.image ? <img src={item.image.thumbnailUrl} alt="" /> : <FileIcon />}</div>
      <div class="upload-main">
        <div class="upload-line">
          <span class="upload-name" title={item.file.name}>
            {item.file.name}
          </span>
          <span class="upload-size">{bytes(item.file.size)}</span>
        </div>
        {editable && (
          <div class="alt-field">
            <label for={fieldId}>
              Alt text <span class="muted">(optional)</span>
            </label>
            <input
              id={fieldId}
              type="text"
              value={item.altText}
              placeholder="e.g. a large red circle on a white background"
              aria-invalid={length > maxChars ? true : undefined}
              aria-describedby={`${fieldId}-count`}
              onInput={(e) => props.onAltText((e.target as HTMLInputElement).value)}
            />
            <span id={`${fieldId}-count`} class={`char-count${length > maxChars ? ' is-over' : ''}`}>
              {length > maxChars ? `${length - maxChars} characters too long (at most ${maxChars})` : `${length} / ${maxChars}`}
            </span>
          </div>
        )}
        {(item.status === 'uploading' || item.status === 'queued') && (
          <div class="progress" role="progressbar" aria-label={`Uploading ${item.file.name}`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
            <div class="progress-fill" style={{ width: `${pct}%` }} />
          </div>
        )}
        {item.status === 'processing' && (
          <div class="progress is-indeterminate" role="progressbar" aria-label={`Processing ${item.file.name}`}>
            <div class="progress-fill" />
          </div>
        )}
        {item.altText.trim() && !editable && !done && <span class="upload-caption">Alt text: {item.altText.trim()}</span>}
        {done && item.image && (
          <a class="upload-caption" href={href({ name: 'image', id: item.image.id })}>
            {sentence(item.image.description ?? item.image.caption) || 'View image'}
          </a>
        )}
        {done && item.image?.altTextMatch != null && <MatchMeter value={item.image.altTextMatch} label="Alt text matches" />}
        {item.status === 'rejected' && item.error && (
          <p class="upload-error" data-testid="upload-error" role="alert">
            {item.error.message}
            {item.error.code !== 'NETWORK' && item.error.code !== 'ABORTED' && <code>{item.error.code}</code>}
          </p>
        )}
      </div>
      <div class="upload-status">
        <span class={`badge badge-${item.status}`}>
          {item.status === 'uploading' ? `${pct}%` : item.status === 'processing' ? <Spinner label="Processing" /> : null}
          {item.status !== 'uploading' && item.status !== 'processing' ? LABEL[item.status] : null}
          <span class="visually-hidden">{LABEL[item.status]}</span>
        </span>
        {item.status === 'uploading' && (
          <button type="button" class="btn btn-ghost btn-small" onClick={props.onCancel}>
            Cancel
          </button>
        )}
        {item.status === 'rejected' && item.error?.retryable && (
          <button type="button" class="btn btn-secondary btn-small" onClick={props.onRetry} disabled={length > maxChars}>
            Try again
          </button>
        )}
        {(item.status === 'ready' || item.status === 'rejected') && (
          <button type="button" class="btn btn-ghost btn-small" onClick={props.onRemove} aria-label={`Remove ${item.file.name}`}>
            Remove
          </button>
        )}
      </div>
    </li>
  );
}

function FileIcon() {
  return (
    <svg viewBox="0 0 24 24" class="icon" aria-hidden="true">
      <rect x="3" y="3" width="18" height="18" rx="3" fill="none" stroke="currentColor" stroke-width="1.6" />
      <circle cx="9" cy="9" r="2" fill="currentColor" />
      <path d="M4 18l5-5 4 4 3-3 4 4" fill="none" stroke="currentColor" stroke-width="1.6" />
    </svg>
  );
}
