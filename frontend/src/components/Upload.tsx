import {
  useCallback,
  useEffect,
  useRef,
  useState,
  type DragEvent,
  type ReactNode,
  type RefObject,
} from 'react';
import { uploadFiles, type IngestTarget, type UploadHandle } from '../api/upload';

export type UploadState =
  | { status: 'uploading'; names: string[]; fraction: number | null }
  | { status: 'done'; names: string[] }
  | { status: 'error'; names: string[]; message: string };

/** Upload files with progress; one upload at a time. */
export function useUpload() {
  const [state, setState] = useState<UploadState | null>(null);
  const handle = useRef<UploadHandle | null>(null);

  useEffect(() => () => handle.current?.abort(), []);

  const start = useCallback(async (files: File[], target: IngestTarget): Promise<boolean> => {
    if (files.length === 0 || handle.current) return false;
    const names = files.map((f) => f.name);
    setState({ status: 'uploading', names, fraction: 0 });
    const h = uploadFiles(files, target, (p) =>
      setState({ status: 'uploading', names, fraction: p.fraction }),
    );
    handle.current = h;
    try {
      await h.promise;
      setState({ status: 'done', names });
      return true;
    } catch (err) {
      setState({ status: 'error', names, message: err instanceof Error ? err.message : String(err) });
      return false;
    } finally {
      handle.current = null;
    }
  }, []);

  const cancel = useCallback(() => handle.current?.abort(), []);
  const dismiss = useCallback(() => setState(null), []);
  return { state, start, cancel, dismiss, busy: state?.status === 'uploading' };
}

function fileList(names: string[]): string {
  if (names.length === 1) return names[0]!;
  return `${names.length} files`;
}

export function UploadStatus({
  state,
  onCancel,
  onDismiss,
}: {
  state: UploadState | null;
  onCancel(): void;
  onDismiss(): void;
}) {
  if (!state) return null;
  const what = fileList(state.names);
  if (state.status === 'uploading') {
    const pct = state.fraction === null ? null : Math.round(state.fraction * 100);
    return (
      <div className="upload-status" data-testid="upload-status" data-status="uploading" role="status">
        <span>
          Uploading {what}
          {pct !== null && state.fraction !== null && state.fraction < 1 ? ` — ${pct}%` : pct === 100 ? ' — processing…' : '…'}
        </span>
        <progress
          max={100}
          value={pct ?? undefined}
          aria-label={`Upload progress for ${what}`}
          data-testid="upload-progress"
        />
        <button type="button" className="small" onClick={onCancel}>
          Cancel
        </button>
      </div>
    );
  }
  if (state.status === 'done') {
    return (
      <div className="upload-status ok" data-testid="upload-status" data-status="done" role="status">
        <span>Added {what}.</span>
        <button type="button" className="small" onClick={onDismiss} aria-label="Dismiss upload message">
          OK
        </button>
      </div>
    );
  }
  return (
    <div className="upload-status err" data-testid="upload-status" data-status="error" role="alert">
      <span>
        Could not add {what}: {state.message}
      </span>
      <button type="button" className="small" onClick={onDismiss} aria-label="Dismiss upload error">
        Dismiss
      </button>
    </div>
  );
}

function hasFiles(e: DragEvent): boolean {
  return Array.from(e.dataTransfer?.types ?? []).includes('Files');
}

/** Wraps an area that accepts dropped files; shows an overlay while files are dragged over it. */
export function DropZone({
  onFiles,
  label,
  disabled,
  className,
  children,
}: {
  onFiles(files: File[]): void;
  label: string;
  disabled?: boolean;
  className?: string;
  children: ReactNode;
}) {
  const [over, setOver] = useState(false);
  const depth = useRef(0);
  return (
    <div
      className={`drop-zone${over ? ' drag-over' : ''}${className ? ` ${className}` : ''}`}
      data-testid="drop-zone"
      onDragEnter={(e) => {
        if (disabled || !hasFiles(e)) return;
        e.preventDefault();
        depth.current += 1;
        setOver(true);
      }}
      onDragOver={(e) => {
        if (disabled || !hasFiles(e)) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = 'copy';
      }}
      onDragLeave={() => {
        depth.current = Math.max(0, depth.current - 1);
        if (depth.current === 0) setOver(false);
      }}
      onDrop={(e) => {
        if (disabled || !hasFiles(e)) return;
        e.preventDefault();
        depth.current = 0;
        setOver(false);
        const files = Array.from(e.dataTransfer.files);
        if (files.length) onFiles(files);
      }}
    >
      {children}
      {over && (
        <div className="drop-overlay" aria-hidden="true">
          {label}
        </div>
      )}
    </div>
  );
}

/** A visually hidden file input, opened by a visible button elsewhere (via `inputRef`). */
export function HiddenFileInput({
  inputRef,
  label,
  testId,
  onFiles,
}: {
  inputRef: RefObject<HTMLInputElement | null>;
  label: string;
  testId: string;
  onFiles: (files: File[]) => void;
}) {
  return (
    <input
      ref={inputRef}
      type="file"
      multiple
      className="sr-only"
      tabIndex={-1}
      aria-label={label}
      data-testid={testId}
      onChange={(e) => {
        const files = Array.from(e.target.files ?? []);
        e.target.value = '';
        if (files.length) onFiles(files);
      }}
    />
  );
}
