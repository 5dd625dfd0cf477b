import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, type ImageNode, type ResultEdge } from '../api';
import { bytes, dateTime, sentence, signed } from '../format';
import { href, lastListRoute, navigate, parseMetadataFilter } from '../router';
import { collectionChanged, qaHistory, saveQaHistory, toast, useLimits, type QA } from '../store';
import { EmptyState, ErrorNotice, FieldError, MatchMeter, Spinner } from './ui';

const SUGGESTIONS = ['what color is the background?', 'how many shapes are there?', 'what color is the circle?', 'is there a red square?'];

/** One image: picture, caption, alt text, facts, questions and answers, similar images, delete. */
export function ImageView({ id, canGoBack }: { id: string; canGoBack: boolean }) {
  const [image, setImage] = useState<ImageNode | null | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const ctrl = new AbortController();
    setImage(undefined);
    setError(null);
    api.image(id, ctrl.signal).then(
      (img) => !ctrl.signal.aborted && setImage(img),
      (e: unknown) => !ctrl.signal.aborted && setError(e),
    );
    window.scrollTo({ top: 0 });
    return () => ctrl.abort();
  }, [id, attempt]);

  const back = () => (canGoBack ? history.back() : navigate({ name: 'library', filter: {} }));
  // After a deletion, back to the list it came from, unless that list was "more like" this image.
  const afterDelete = () => {
    const prev = lastListRoute();
    if (canGoBack && prev && !(prev.name === 'similar' && prev.id === id)) history.back();
    else navigate({ name: 'library', filter: {} }, true);
  };

  return (
    <section class="detail" aria-labelledby="detail-title">
      <div class="detail-top">
        <button type="button" class="btn btn-ghost" onClick={back}>
          <svg viewBox="0 0 20 20" class="icon" aria-hidden="true">
            <path d="M12.5 4 6.5 10l6 6" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" />
          </svg>
          Back to results
        </button>
      </div>
      {error != null && <ErrorNotice error={error} title="Could not load this image" onRetry={() => setAttempt((a) => a + 1)} />}
      {image === undefined && error == null && (
        <div class="detail-loading">
          <Spinner label="Loading image" /> Loading image…
        </div>
      )}
      {image === null && (
        <EmptyState title="This image is not here any more">
          <p>It may have been deleted.</p>
          <a class="btn btn-primary" href={href({ name: 'library', filter: {} })}>
            Go to your images
          </a>
        </EmptyState>
      )}
      {image && <ImageDetail image={image} onDeleted={afterDelete} onChanged={setImage} />}
    </section>
  );
}

function ImageDetail({ image, onDeleted, onChanged }: { image: ImageNode; onDeleted: () => void; onChanged: (image: ImageNode) => void }) {
  const caption = sentence(image.caption) || 'No caption';
  const titleRef = useRef<HTMLHeadingElement>(null);
  // A new page for screen readers and keyboards: start from its title.
  useEffect(() => {
    titleRef.current?.focus({ preventScroll: true });
  }, [image.id]);
  useEffect(() => {
    document.title = `${caption} · blip-search`;
  }, [caption]);
  return (
    <>
      <div class="detail-grid">
        <figure class="detail-figure">
          <div class="detail-image-frame">
            <img src={image.url} alt={sentence(image.description ?? image.caption) || 'Uploaded image'} width={image.width} height={image.height} />
          </div>
          <figcaption class="facts">
            <span>
              {image.width} × {image.height}
            </span>
            <span>{image.mimeType.replace('image/', '').toUpperCase()}</span>
            <span>{bytes(image.byteSize)}</span>
            <span>Added {dateTime(image.createdAt)}</span>
            {image.takenAt && <span data-testid="taken-at">Taken {dateTime(image.takenAt)}</span>}
            {(image.cameraMake || image.cameraModel) && <span data-testid="camera">{cameraName(image.cameraMake, image.cameraModel)}</span>}
          </figcaption>
        </figure>
        <div class="detail-side">
          <p class="eyebrow">Caption</p>
          <h1 id="detail-title" class="detail-caption" data-testid="detail-caption" tabIndex={-1} ref={titleRef}>
            {caption}
          </h1>
          {image.captionMatch != null && <MatchMeter value={image.captionMatch} label="Matches image" />}
          <Recaption id={image.id} onChanged={onChanged} />
          {image.altText && (
            <div class="alt-text">
              <p class="eyebrow">Alt text</p>
              <p data-testid="alt-text">{image.altText}</p>
              {image.altTextMatch != null && <MatchMeter value={image.altTextMatch} label="Matches image" />}
            </div>
          )}
          {image.metadata && Object.keys(image.metadata).length > 0 && (
            <div class="metadata">
              <p class="eyebrow">Metadata</p>
              <pre data-testid="metadata">{JSON.stringify(image.metadata, null, 2)}</pre>
            </div>
          )}
          <EditDetails image={image} onChanged={onChanged} />
          <div class="detail-actions">
            <a class="btn btn-secondary" href={href({ name: 'similar', id: image.id, filter: {} })}>
              More like this
            </a>
            <a class="btn btn-ghost" href={image.url} target="_blank" rel="noopener">
              Open original
            </a>
            <DeleteButton id={image.id} onDeleted={onDeleted} />
          </div>
          <Questions id={image.id} />
        </div>
      </div>
      <SimilarStrip id={image.id} />
    </>
  );
}

function cameraName(make: string | null, model: string | null): string {
  // Models often repeat the make ("Canon" + "Canon EOS R5").
  if (make && model && model.toLowerCase().startsWith(make.toLowerCase())) return model;
  return [make, model].filter(Boolean).join(' ');
}

/** Edit the alt text (scored again by the server) and the metadata, with updateImage. */
function EditDetails({ image, onChanged }: { image: ImageNode; onChanged: (image: ImageNode) => void }) {
  const limits = useLimits();
  const [open, setOpen] = useState(false);
  const [alt, setAlt] = useState(image.altText ?? '');
  const [meta, setMeta] = useState(image.metadata ? JSON.stringify(image.metadata, null, 2) : '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [metaError, setMetaError] = useState<string | null>(null);
  const altRef = useRef<HTMLTextAreaElement>(null);
  // The form follows the stored values when they change (a save, another image).
  const storedMeta = image.metadata ? JSON.stringify(image.metadata, null, 2) : '';
  const storedAlt = image.altText ?? '';
  useEffect(() => {
    setAlt(storedAlt);
    setMeta(storedMeta);
  }, [storedAlt, storedMeta]);
  useLayoutEffect(() => {
    if (open) altRef.current?.focus();
  }, [open]);

  if (!open) {
    return (
      <div>
        <button type="button" class="btn btn-ghost btn-small" onClick={() => setOpen(true)}>
          Edit alt text and metadata
        </button>
      </div>
    );
  }
  const altLength = alt.trim().length;
  const save = async () => {
    const parsed = parseMetadataFilter(meta);
    setMetaError(parsed.error ?? null);
    if (parsed.error || altLength > limits.maxTextChars) return;
    const input: { altText?: string | null; metadata?: Record<string, unknown> | null } = {};
    if (alt.trim() !== (image.altText ?? '')) input.altText = alt.trim() || null;
    if (JSON.stringify(parsed.value ?? null) !== JSON.stringify(image.metadata ?? null)) input.metadata = parsed.value ?? null;
    if (Object.keys(input).length === 0) {
      setOpen(false);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      onChanged(await api.update(image.id, input));
      collectionChanged();
      toast('Changes saved.', 'success');
      setOpen(false);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      class="edit-details"
      aria-label="Edit alt text and metadata"
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <label for="edit-alt">Alt text</label>
      <textarea
        id="edit-alt"
        ref={altRef}
        rows={2}
        value={alt}
        aria-invalid={altLength > limits.maxTextChars ? true : undefined}
        aria-describedby="edit-alt-count"
        onInput={(e) => setAlt((e.target as HTMLTextAreaElement).value)}
      />
      <span id="edit-alt-count" class={`char-count${altLength > limits.maxTextChars ? ' is-over' : ''}`}>
        {altLength > limits.maxTextChars ? `${altLength - limits.maxTextChars} characters too long (at most ${limits.maxTextChars})` : `${altLength} / ${limits.maxTextChars}`}
      </span>
      <label for="edit-metadata">Metadata (a JSON object)</label>
      <textarea
        id="edit-metadata"
        rows={4}
        value={meta}
        spellcheck={false}
        placeholder='{"album": "trip"}'
        aria-invalid={metaError ? true : undefined}
        onInput={(e) => setMeta((e.target as HTMLTextAreaElement).value)}
      />
      {metaError && (
        <p class="field-error" role="alert">
          {metaError}
        </p>
      )}
      <div class="edit-actions">
        <button type="submit" class="btn btn-primary btn-small" disabled={busy || altLength > limits.maxTextChars}>
          {busy ? <Spinner label="Saving" /> : null} {error ? 'Try again' : 'Save'}
        </button>
        <button type="button" class="btn btn-ghost btn-small" onClick={() => setOpen(false)} disabled={busy}>
          Cancel
        </button>
      </div>
      <FieldError error={error} />
    </form>
  );
}

const DECODINGS = [
  { beams: 3, label: 'Beam search, 3 beams' },
  { beams: 5, label: 'Beam search, 5 beams' },
  { beams: 1, label: 'Greedy (fastest)' },
];

/** Writes a new caption with other decoding settings (the recaption mutation) and shows it. */
function Recaption({ id, onChanged }: { id: string; onChanged: (image: ImageNode) => void }) {
  const [beams, setBeams] = useState(3);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      onChanged(await api.recaption(id, { numBeams: beams }));
      collectionChanged();
      toast('New caption saved.', 'success');
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      class="recaption"
      onSubmit={(e) => {
        e.preventDefault();
        void run();
      }}
    >
      <label for="recaption-decoding" class="visually-hidden">
        Decoding
      </label>
      <select id="recaption-decoding" value={beams} onChange={(e) => setBeams(Number((e.target as HTMLSelectElement).value))} disabled={busy}>
        {DECODINGS.map((d) => (
          <option key={d.beams} value={d.beams}>
            {d.label}
          </option>
        ))}
      </select>
      <button type="submit" class="btn btn-ghost btn-small" disabled={busy}>
        {busy ? <Spinner label="Captioning" /> : null} Caption again
      </button>
      <FieldError error={error} />
    </form>
  );
}

function DeleteButton({ id, onDeleted }: { id: string; onDeleted: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);
  // The confirmation takes the focus at once: Enter confirms, Tab reaches Cancel.
  useLayoutEffect(() => {
    if (confirming) confirmRef.current?.focus();
  }, [confirming]);

  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.remove(id);
      collectionChanged(id);
      toast('Image deleted.', 'success');
      onDeleted();
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };

  if (!confirming) {
    return (
      <button type="button" class="btn btn-danger-ghost" onClick={() => setConfirming(true)}>
        Delete
      </button>
    );
  }
  return (
    <div class="confirm" role="group" aria-label="Confirm deletion">
      <span>Delete this image for good?</span>
      <button type="button" ref={confirmRef} class="btn btn-danger btn-small" onClick={remove} disabled={busy}>
        {busy ? <Spinner label="Deleting" /> : null} Delete image
      </button>
      <button type="button" class="btn btn-ghost btn-small" onClick={() => setConfirming(false)} disabled={busy}>
        Cancel
      </button>
      <FieldError error={error} />
    </div>
  );
}

function Questions({ id }: { id: string }) {
  const limits = useLimits();
  const [history, setHistory] = useState<QA[]>(() => qaHistory(id));
  const [question, setQuestion] = useState('');
  const [pending, setPending] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const answerers = limits.models.filter((m) => m.tasks.includes('vqa'));
  const [model, setModel] = useState<string | null>(null);
  const chosen = model ?? answerers.find((m) => m.defaultAnswerer)?.name ?? null;
  const logRef = useRef<HTMLOListElement>(null);
  const inputRef = useRef<HTMLInputElement>(null);

  useEffect(() => setHistory(qaHistory(id)), [id]);
  useEffect(() => {
    const el = logRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [history, pending]);

  const ask = async (q: string) => {
    const text = q.trim();
    if (!text || pending) return;
    setPending(text);
    setError(null);
    try {
      const res = await api.ask(id, text, chosen ?? undefined);
      const next = [...history, { question: text, answer: res.answer, model: res.model.name }];
      setHistory(next);
      saveQaHistory(id, next);
      setQuestion('');
    } catch (e) {
      setError(e);
    } finally {
      setPending(null);
      inputRef.current?.focus();
    }
  };

  return (
    <section class="qa" aria-labelledby="qa-title">
      <h2 id="qa-title">Ask about this image</h2>
      {(history.length > 0 || pending) && (
        <ol class="qa-log" ref={logRef} aria-live="polite" data-testid="qa-log">
          {history.map((qa, i) => (
            <li key={i} class="qa-item" data-testid="qa-item">
              <p class="qa-q">{sentence(qa.question)}</p>
              <p class="qa-a" data-testid="qa-answer">
                {qa.answer}
              </p>
              {qa.model && answerers.length > 1 && (
                <p class="qa-model" data-testid="qa-model">
                  {qa.model}
                </p>
              )}
            </li>
          ))}
          {pending && (
            <li class="qa-item">
              <p class="qa-q">{sentence(pending)}</p>
              <p class="qa-a qa-pending">
                <Spinner label="Thinking" /> Thinking…
              </p>
            </li>
          )}
        </ol>
      )}
      <form
        class="qa-form"
        onSubmit={(e) => {
          e.preventDefault();
          void ask(question);
        }}
      >
        <label class="visually-hidden" for="qa-input">
          Your question
        </label>
        <input
          id="qa-input"
          ref={inputRef}
          type="text"
          value={question}
          onInput={(e) => setQuestion((e.target as HTMLInputElement).value)}
          placeholder="e.g. what color is the circle?"
          autocomplete="off"
          maxLength={limits.maxTextChars}
          disabled={pending != null}
        />
        {answerers.length > 1 && (
          <>
            <label class="visually-hidden" for="qa-model">
              Model
            </label>
            <select id="qa-model" data-testid="qa-model-select" value={chosen ?? ''} disabled={pending != null}
              onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
              {answerers.map((m) => (
                <option key={m.name} value={m.name}>
                  {m.name} ({m.family === 'blip2' ? 'BLIP-2' : 'BLIP'})
                </option>
              ))}
            </select>
          </>
        )}
        <button type="submit" class="btn btn-primary" disabled={pending != null || !question.trim()}>
          Ask
        </button>
      </form>
      <FieldError error={error} />
      <div class="suggestions" aria-label="Suggested questions">
        {SUGGESTIONS.map((s) => (
          <button key={s} type="button" class="chip chip-button" onClick={() => void ask(s)} disabled={pending != null}>
            {s}
          </button>
        ))}
      </div>
    </section>
  );
}

function SimilarStrip({ id }: { id: string }) {
  const [edges, setEdges] = useState<ResultEdge[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const ctrl = new AbortController();
    setEdges(null);
    setError(null);
    api.similar({ id, first: 8 }, ctrl.signal).then(
      (c) => !ctrl.signal.aborted && setEdges(c.edges),
      (e: unknown) => !ctrl.signal.aborted && setError(e),
    );
    return () => ctrl.abort();
  }, [id]);

  return (
    <section class="similar" aria-labelledby="similar-title">
      <div class="similar-head">
        <h2 id="similar-title">Similar images</h2>
        {edges && edges.length > 0 && (
          <a href={href({ name: 'similar', id, filter: {} })} class="link">
            See all
          </a>
        )}
      </div>
      {error != null && <ErrorNotice error={error} title="Could not load similar images" />}
      {!edges && error == null && (
        <div class="strip" aria-hidden="true">
          {Array.from({ length: 6 }, (_, i) => (
            <div key={i} class="strip-item skeleton">
              <div class="thumb" />
            </div>
          ))}
        </div>
      )}
      {edges && edges.length === 0 && <p class="muted">No other images to compare with yet.</p>}
      {edges && edges.length > 0 && (
        <ul class="strip" data-testid="similar">
          {edges.map((e) => {
            const text = sentence(e.node.description ?? e.node.caption) || 'Image';
            return (
              <li key={e.node.id} class="strip-item">
                <a href={href({ name: 'image', id: e.node.id })} title={text}>
                  <div class="thumb">
                    <img src={e.node.thumbnailUrl} alt={text} loading="lazy" />
                  </div>
                  <span class="strip-score">{e.itcScore != null ? `ITC ${signed(e.itcScore)}` : ''}</span>
                </a>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
