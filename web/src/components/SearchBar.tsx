import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, describeError } from '../api';
import { bytes } from '../format';
import { DEFAULT_MIN_MATCH, defaultRerank, navigate, type Route } from '../router';
import { setQueryImage, toast, typeNames, useLimits } from '../store';

/**
 * The search box: text (Enter searches), and search by image: the camera button picks a file,
 * or an image dropped on the box searches with it (the rest of the page uploads dropped files).
 */
export function SearchBar({ route }: { route: Route }) {
  const limits = useLimits();
  const current = route.name === 'search' ? route.q : '';
  const [text, setText] = useState(current);
  const [dropping, setDropping] = useState(false);
  const fileRef = useRef<HTMLInputElement>(null);
  useEffect(() => setText(current), [current]);

  const filter = route.name === 'image' ? {} : route.filter;
  const submit = (e: Event) => {
    e.preventDefault();
    const q = text.trim();
    if (!q) {
      navigate({ name: 'library', filter });
      return;
    }
    const prev = route.name === 'search' ? route : { mode: 'SEMANTIC' as const, rerank: defaultRerank('SEMANTIC'), minMatch: DEFAULT_MIN_MATCH, weak: false };
    navigate({ name: 'search', q, mode: prev.mode, rerank: prev.rerank, minMatch: prev.minMatch, weak: prev.weak, filter });
  };

  const searchWith = async (file: File | undefined) => {
    if (!file) return;
    // Checked here as the server would, so the message can come at once and in words.
    if (file.type && !limits.acceptedMimeTypes.includes(file.type)) {
      toast(`“${file.name}” is not an image blip-search can read. Use ${typeNames(limits.acceptedMimeTypes)}.`, 'error');
      return;
    }
    if (file.size > limits.maxUploadBytes) {
      toast(`“${file.name}” is ${bytes(file.size)}; the server accepts images up to ${bytes(limits.maxUploadBytes)}.`, 'error');
      return;
    }
    try {
      await setQueryImage(file);
      setText('');
      navigate({ name: 'image-search', filter });
    } catch (error) {
      toast(describeError(error instanceof Error ? error : new ApiError(String(error), 'READ')), 'error');
    }
  };

  const hasFiles = (e: DragEvent) => Array.from(e.dataTransfer?.types ?? []).includes('Files');
  return (
    <form
      class={`searchbar${dropping ? ' is-drop-target' : ''}`}
      role="search"
      onSubmit={submit}
      onDragEnter={(e) => hasFiles(e) && setDropping(true)}
      onDragOver={(e) => {
        if (!hasFiles(e)) return;
        e.preventDefault();
        e.stopPropagation();
        setDropping(true);
      }}
      onDragLeave={() => setDropping(false)}
      onDrop={(e) => {
        if (!hasFiles(e)) return;
        // Dropped here it is a query, not an upload: keep it from the page's upload handler.
        e.preventDefault();
        e.stopPropagation();
        setDropping(false);
        void searchWith(e.dataTransfer?.files[0]);
      }}
      data-testid="searchbar"
    >
      <label for="search-input" class="visually-hidden">
        Describe what you are looking for
      </label>
      <svg viewBox="0 0 20 20" class="icon searchbar-icon" aria-hidden="true">
        <circle cx="8.5" cy="8.5" r="5.5" fill="none" stroke="currentColor" stroke-width="2" />
        <path d="m13 13 4 4" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
      </svg>
      <input
        id="search-input"
        type="search"
        value={text}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
        placeholder={dropping ? 'Drop to search by this image' : 'Search, e.g. “red circle”, or drop an image'}
        autocomplete="off"
        maxLength={limits.maxTextChars}
        enterKeyHint="search"
      />
      <button type="button" class="btn btn-ghost btn-icon searchbar-image" aria-label="Search by image" title="Search by image" onClick={() => fileRef.current?.click()}>
        <svg viewBox="0 0 20 20" class="icon" aria-hidden="true">
          <rect x="2.5" y="4.5" width="15" height="11" rx="2" fill="none" stroke="currentColor" stroke-width="1.8" />
          <circle cx="10" cy="10" r="3" fill="none" stroke="currentColor" stroke-width="1.8" />
          <path d="M7 4.5 8 3h4l1 1.5" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round" />
        </svg>
      </button>
      <input
        ref={fileRef}
        class="visually-hidden"
        type="file"
        accept={limits.acceptedMimeTypes.join(',')}
        tabIndex={-1}
        aria-label="Choose an image to search with"
        onChange={(e) => {
          const input = e.target as HTMLInputElement;
          void searchWith(input.files?.[0]);
          input.value = '';
        }}
      />
      <button type="submit" class="btn btn-primary searchbar-submit">
        Search
      </button>
    </form>
  );
}
