import { useId, useState } from 'react';
import type { ToolCall } from '../api/types';

interface Props {
  calls: ToolCall[];
  busy: boolean;
  onApprove(): void;
  onEdit(calls: ToolCall[]): void;
  onReject(): void;
}

/** A paused run: the assistant asks to call tools. Approve, edit the arguments, or reject. */
export function Approval({ calls, busy, onApprove, onEdit, onReject }: Props) {
  const [editing, setEditing] = useState(false);
  const [drafts, setDrafts] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const titleId = useId();

  const startEdit = () => {
    setDrafts(Object.fromEntries(calls.map((c) => [c.id, JSON.stringify(c.args, null, 2)])));
    setErrors({});
    setEditing(true);
  };

  const saveEdit = () => {
    const errs: Record<string, string> = {};
    const edited: ToolCall[] = [];
    for (const c of calls) {
      try {
        const parsed: unknown = JSON.parse(drafts[c.id] ?? '{}');
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
          throw new Error('Arguments must be a JSON object.');
        }
        edited.push({ ...c, args: parsed as Record<string, unknown> });
      } catch (err) {
        errs[c.id] = err instanceof Error ? err.message : 'Invalid JSON';
      }
    }
    setErrors(errs);
    if (Object.keys(errs).length === 0) {
      setEditing(false);
      onEdit(edited);
    }
  };

  return (
    <section className="approval" data-testid="approval" aria-labelledby={titleId}>
      <h2 id={titleId}>
        The assistant wants to use {calls.length === 1 ? 'a tool' : `${calls.length} tools`}
      </h2>
      {calls.map((c) => (
        <div className="approval-call" key={c.id} data-testid="approval-call" data-tool-name={c.name}>
          <div>
            <code className="tool-name">{c.name}</code>
          </div>
          {editing ? (
            <>
              <label htmlFor={`${titleId}-${c.id}`}>Arguments for {c.name} (JSON)</label>
              <textarea
                id={`${titleId}-${c.id}`}
                className="mono"
                data-testid="args-editor"
                rows={Math.min(12, Math.max(3, (drafts[c.id] ?? '').split('\n').length + 1))}
                spellCheck={false}
                value={drafts[c.id] ?? ''}
                aria-invalid={errors[c.id] ? true : undefined}
                onChange={(e) => setDrafts((d) => ({ ...d, [c.id]: e.target.value }))}
              />
              {errors[c.id] && (
                <p className="error small" role="alert">
                  {errors[c.id]}
                </p>
              )}
            </>
          ) : (
            <pre className="mono">{JSON.stringify(c.args, null, 2)}</pre>
          )}
        </div>
      ))}
      <div className="approval-actions">
        {editing ? (
          <>
            <button type="button" className="primary" onClick={saveEdit} disabled={busy} data-testid="save-args-button">
              Save and run
            </button>
            <button type="button" onClick={() => setEditing(false)} disabled={busy}>
              Cancel
            </button>
          </>
        ) : (
          <>
            <button type="button" className="primary" onClick={onApprove} disabled={busy} data-testid="approve-button">
              Approve
            </button>
            <button type="button" onClick={startEdit} disabled={busy} data-testid="edit-args-button">
              Edit arguments
            </button>
            <button type="button" className="danger-outline" onClick={onReject} disabled={busy} data-testid="reject-button">
              Reject
            </button>
          </>
        )}
      </div>
    </section>
  );
}
