import { useEffect, useRef, useState } from 'preact/hooks';
import { api, onConnectivity, type ServiceInfo } from '../api';
import { useRoute, type ListRoute } from '../router';
import { dismissToast, getQueryImage, setLimits, useCollectionVersion, useToasts } from '../store';
import { ImageView } from './ImageView';
import { JobsIndicator } from './JobsIndicator';
import { ListOptions } from './ListOptions';
import { ResultsView } from './ResultsView';
import { SearchBar } from './SearchBar';
import { Uploader } from './Uploader';

export function App() {
  const route = useRoute();
  const [uploadOpen, setUploadOpen] = useState(false);
  const [dropped, setDropped] = useState<File[] | null>(null);
  const [dragOver, setDragOver] = useState(false);
  const inApp = useRef(0);

  // Back from the image view goes to the results it came from, when it came from inside the app.
  useEffect(() => {
    inApp.current++;
    if (route.name === 'search') document.title = `${route.q} · blip-search`;
    else if (route.name === 'similar') document.title = 'More like this · blip-search';
    else if (route.name === 'image-search') document.title = 'Search by image · blip-search';
    else if (route.name === 'library') document.title = 'blip-search';
  }, [route]);

  // Escape closes the upload panel.
  useEffect(() => {
    if (!uploadOpen) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') setUploadOpen(false);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [uploadOpen]);

  // Dropping files anywhere on the page opens the upload panel with them.
  useEffect(() => {
    let depth = 0;
    const hasFiles = (e: DragEvent) => Array.from(e.dataTransfer?.types ?? []).includes('Files');
    const enter = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      depth++;
      setDragOver(true);
    };
    const leave = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      depth = Math.max(0, depth - 1);
      if (depth === 0) setDragOver(false);
    };
    const over = (e: DragEvent) => {
      if (hasFiles(e)) e.preventDefault();
    };
    const drop = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      setDragOver(false);
      const files = Array.from(e.dataTransfer?.files ?? []);
      if (files.length) {
        setUploadOpen(true);
        setDropped(files);
      }
    };
    window.addEventListener('dragenter', enter);
    window.addEventListener('dragleave', leave);
    window.addEventListener('dragover', over);
    window.addEventListener('drop', drop);
    return () => {
      window.removeEventListener('dragenter', enter);
      window.removeEventListener('dragleave', leave);
      window.removeEventListener('dragover', over);
      window.removeEventListener('drop', drop);
    };
  }, []);

  return (
    <div class="app">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <div class="topbar-inner">
          <a class="brand" href="#/" aria-label="blip-search: your images">
            <Logo />
            <span>
              blip<span class="brand-dim">search</span>
            </span>
          </a>
          <SearchBar route={route} />
          <JobsIndicator />
          <button type="button" class="btn btn-primary upload-toggle" aria-label="Upload images" aria-expanded={uploadOpen} aria-controls="upload-region" onClick={() => setUploadOpen((o) => !o)}>
            <svg viewBox="0 0 20 20" class="icon" aria-hidden="true">
              <path d="M10 14V4m0 0L6 8m4-4 4 4M4 13v2a2 2 0 0 0 2 2h8a2 2 0 0 0 2-2v-2" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" />
            </svg>
            <span class="upload-toggle-label">Upload</span>
          </button>
        </div>
        {route.name !== 'image' && <ListOptions route={route} />}
      </header>
      <div id="upload-region" class="container">
        <Uploader open={uploadOpen} onClose={() => setUploadOpen(false)} droppedFiles={dropped} />
      </div>
      <main id="main" class="container" tabIndex={-1}>
        {route.name === 'image' ? (
          <ImageView id={route.id} canGoBack={inApp.current >= 1} />
        ) : (
          <ResultsView key={listKey(route)} route={route} onUpload={() => setUploadOpen(true)} />
        )}
      </main>
      <Footer />
      {dragOver && (
        <div class="drop-overlay" aria-hidden="true">
          <div>Drop images to add them, or on the search box to search with one</div>
        </div>
      )}
      <Toasts />
    </div>
  );
}

function Footer() {
  const version = useCollectionVersion();
  const [info, setInfo] = useState<ServiceInfo | null>(null);
  const [down, setDown] = useState(false);
  useEffect(() => {
    api.info().then(
      (i) => {
        setInfo(i);
        setLimits(i);
        setDown(false);
      },
      () => setDown(true),
    );
  }, [version]);
  useEffect(() => onConnectivity((ok) => setDown(!ok)), []);
  return (
    <footer class="footer">
      <div class="container footer-inner">
        <span class={`status-dot${down ? ' is-down' : info ? ' is-up' : ''}`} aria-hidden="true" />
        {down ? (
          <span>The server is not answering.</span>
        ) : info ? (
          <span>
            Model <code>{info.modelId}</code> · {info.indexedImages} {info.indexedImages === 1 ? 'image' : 'images'} indexed
          </span>
        ) : (
          <span>Connecting…</span>
        )}
        <a class="link footer-api" href="/graphql">
          GraphQL API
        </a>
      </div>
    </footer>
  );
}

function Toasts() {
  const toasts = useToasts();
  return (
    <div class="toasts" aria-live="polite">
      {toasts.map((t) => (
        <div key={t.id} class={`toast toast-${t.tone}`} role={t.tone === 'error' ? 'alert' : 'status'}>
          <span>{t.text}</span>
          <button type="button" class="btn btn-ghost btn-icon btn-small" aria-label="Dismiss" onClick={() => dismissToast(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

function Logo() {
  return (
    <svg viewBox="0 0 32 32" class="logo" aria-hidden="true">
      <rect width="32" height="32" rx="8" fill="#1f2a44" />
      <circle cx="12" cy="13" r="6" fill="#e5484d" />
      <rect x="17" y="16" width="9" height="9" rx="1" fill="#3e7bfa" />
      <path d="M8 26l4-7 4 7z" fill="#f5c542" />
    </svg>
  );
}

/**
 * A new list is a new ResultsView: otherwise its first frame shows the previous list, marked not
 * busy, under the new heading (its loading flag is set by an effect, after that frame). The query
 * image counts: a second image dropped on an image search searches again at the same address.
 */
function listKey(route: ListRoute): string {
  return JSON.stringify(route) + (route.name === 'image-search' ? (getQueryImage()?.previewUrl ?? '') : '');
}
