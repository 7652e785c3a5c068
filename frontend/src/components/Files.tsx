import { useState } from 'react';
import type { StoredFile } from '../api/types';
import { fullTime } from '../lib/time';
import { Icon } from './Icon';

export interface FileGroup {
  /** Where the files are: `thread` (this chat) or `assistant`. */
  owner: 'thread' | 'assistant';
  files: StoredFile[];
  /** Delete one file; absent when the user may not. */
  onDelete?: (filename: string) => Promise<void>;
}

/** The files attached to a chat or an assistant, as chips with a delete button. */
export function FileChips({ groups, label }: { groups: FileGroup[]; label: string }) {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const all = groups.flatMap((g) => g.files.map((f) => ({ ...f, group: g })));
  if (all.length === 0) return null;
  return (
    <div className="file-chips" data-testid="file-chips">
      <span className="file-chips-label">{label}</span>
      <ul aria-label={label}>
        {all.map((f) => {
          const key = `${f.group.owner}:${f.filename}`;
          return (
            <li
              key={key}
              className="file-chip"
              data-testid="file-chip"
              data-owner={f.group.owner}
              data-filename={f.filename}
              title={`${f.filename} — ${f.chunks} passage${f.chunks === 1 ? '' : 's'}, added ${fullTime(f.created_at)}`}
            >
              <Icon name="file" size={14} />
              <span className="file-name">{f.filename}</span>
              {f.group.owner === 'assistant' && groups.length > 1 && <span className="badge">assistant</span>}
              {f.group.onDelete && (
                <button
                  type="button"
                  className="icon-button tiny"
                  aria-label={`Delete file ${f.filename}`}
                  title="Delete"
                  data-testid="delete-file"
                  disabled={busy !== null}
                  onClick={async () => {
                    setBusy(key);
                    setError(null);
                    try {
                      await f.group.onDelete?.(f.filename);
                    } catch (err) {
                      setError(err instanceof Error ? err.message : String(err));
                    } finally {
                      setBusy(null);
                    }
                  }}
                >
                  <Icon name="close" size={12} />
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {error && (
        <p className="error small" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
