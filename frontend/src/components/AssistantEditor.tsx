import { useEffect, useId, useMemo, useRef, useState, type FormEvent } from 'react';
import { api, ApiError } from '../api/client';
import type { Assistant, StoredFile } from '../api/types';
import {
  configToForm,
  defaultValues,
  fieldsFromSchema,
  formToConfig,
  usesFiles,
  validate,
  type FieldSpec,
  type FormValues,
} from '../config/form';
import { FileChips } from './Files';
import { loadConfigSchema } from '../config/schema';
import { linkClick, navigate, paths } from '../lib/router';
import { useApp } from '../state';
import { ConfigFields } from './ConfigForm';
import { DropZone, HiddenFileInput, UploadStatus, useUpload } from './Upload';
import { ShareLink } from './ShareLink';

function pretty(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

interface Loaded {
  fields: FieldSpec[];
  schemaError: string | null;
  assistant: Assistant | null;
}

export function AssistantEditor({ assistantId }: { assistantId?: string }) {
  const app = useApp();
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [name, setName] = useState('');
  const [isPublic, setIsPublic] = useState(false);
  const [values, setValues] = useState<FormValues>({});
  const [base, setBase] = useState<unknown>({});
  const [jsonText, setJsonText] = useState('{}');
  const [jsonError, setJsonError] = useState<string | null>(null);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saving, setSaving] = useState(false);
  const [saveError, setSaveError] = useState<string | null>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [staged, setStaged] = useState<File[]>([]);
  const upload = useUpload();
  const [files, setFiles] = useState<StoredFile[]>([]);
  const fileInput = useRef<HTMLInputElement>(null);
  const formRef = useRef<HTMLFormElement>(null);
  const nameId = useId();
  const jsonId = useId();

  useEffect(() => app.setActiveAssistantId(assistantId ?? null), [assistantId, app.setActiveAssistantId]);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      let fields: FieldSpec[] = [];
      let schemaError: string | null = null;
      try {
        fields = fieldsFromSchema(await loadConfigSchema());
      } catch (err) {
        schemaError = err instanceof Error ? err.message : String(err);
      }
      let assistant: Assistant | null = null;
      if (assistantId) {
        try {
          assistant = await api.getAssistant(assistantId);
        } catch (err) {
          if (!cancelled) setLoadError(err instanceof Error ? err.message : String(err));
          return;
        }
      }
      if (cancelled) return;
      const config = assistant?.config ?? {};
      const initial = assistant ? configToForm(config, fields) : defaultValues(fields);
      setLoaded({ fields, schemaError, assistant });
      setName(assistant?.name ?? '');
      setIsPublic(assistant?.public ?? false);
      setValues(initial);
      setBase(config);
      setJsonText(pretty(formToConfig(initial, fields, config)));
    })();
    return () => {
      cancelled = true;
    };
  }, [assistantId]);

  const fields = loaded?.fields ?? [];
  const assistant = loaded?.assistant ?? null;
  const readOnly = Boolean(assistant && !app.isMine(assistant));

  const ownId = assistant && !readOnly ? assistant.assistant_id : null;
  const reloadFiles = async () => {
    if (!ownId) return;
    try {
      setFiles(await api.assistantFiles(ownId));
    } catch {
      /* the list is an extra */
    }
  };
  useEffect(() => {
    void reloadFiles();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ownId]);

  useEffect(() => {
    const name = assistant?.name;
    document.title = `${assistant ? (readOnly ? name : `Edit ${name}`) : 'New assistant'} · Loom`;
    return () => {
      document.title = 'Loom';
    };
  }, [assistant, readOnly]);

  const config = useMemo(() => formToConfig(values, fields, base), [values, fields, base]);

  const setField = (key: string, value: unknown) => {
    const next = { ...values, [key]: value };
    setValues(next);
    setJsonText(pretty(formToConfig(next, fields, base)));
    setJsonError(null);
    if (errors[key]) setErrors(({ [key]: _gone, ...rest }) => rest);
  };

  const onJsonChange = (text: string) => {
    setJsonText(text);
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new Error('The config must be a JSON object.');
      }
      setBase(parsed);
      setValues((prev) => configToForm(parsed, fields, prev));
      setJsonError(null);
    } catch (err) {
      setJsonError(err instanceof Error ? err.message : String(err));
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (readOnly) return;
    const errs = validate(values, fields);
    if (!name.trim()) errs.__name = 'Give the assistant a name.';
    setErrors(errs);
    if (Object.keys(errs).length > 0 || jsonError) {
      setSaveError(jsonError ? 'Fix the JSON config first.' : 'Some fields need attention.');
      // Take the user to the first field at fault (after React has marked it).
      window.requestAnimationFrame(() => {
        const first = formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]');
        if (first) {
          if (first.closest('details')) first.closest('details')!.open = true;
          first.focus();
          first.scrollIntoView({ block: 'center' });
        }
      });
      return;
    }
    setSaving(true);
    setSaveError(null);
    try {
      const input = { name: name.trim(), config, public: isPublic };
      const saved = assistant
        ? await api.updateAssistant(assistant.assistant_id, input)
        : await api.createAssistant(input);
      app.upsertAssistant(saved);
      if (!assistant && staged.length > 0) {
        const ok = await upload.start(staged, { assistant_id: saved.assistant_id });
        if (!ok) {
          // Stay on the now-existing assistant's edit page so the upload can be retried.
          navigate(paths.editAssistant(saved.assistant_id), { replace: true });
          return;
        }
      }
      navigate(paths.assistant(saved.assistant_id));
    } catch (err) {
      setSaveError(err instanceof ApiError || err instanceof Error ? err.message : String(err));
    } finally {
      setSaving(false);
    }
  };

  const remove = async () => {
    if (!assistant) return;
    setSaving(true);
    try {
      await api.deleteAssistant(assistant.assistant_id);
      app.removeAssistant(assistant.assistant_id);
      navigate(paths.home(), { replace: true });
    } catch (err) {
      setSaveError(err instanceof Error ? err.message : String(err));
      setSaving(false);
    }
  };

  const addFiles = (chosen: File[]) => {
    if (assistant) {
      void upload.start(chosen, { assistant_id: assistant.assistant_id }).then((ok) => {
        if (ok) void reloadFiles();
      });
    } else setStaged((s) => [...s, ...chosen]);
  };
  const cannotRead = fields.length > 0 && !usesFiles(config, fields);

  if (loadError) {
    return (
      <div className="page">
        <h1>Assistant not available</h1>
        <p className="error" role="alert">
          {loadError}
        </p>
        <a href="/" onClick={linkClick('/')}>
          Go home
        </a>
      </div>
    );
  }
  if (!loaded) {
    return (
      <div className="page" role="status">
        Loading…
      </div>
    );
  }

  const title = assistant ? (readOnly ? assistant.name : `Edit ${assistant.name}`) : 'New assistant';

  return (
    <div className="page editor">
      <div className="page-head">
        <h1>{title}</h1>
        {assistant && (
          <div className="head-actions">
            <a className="button" href={paths.assistant(assistant.assistant_id)} onClick={linkClick(paths.assistant(assistant.assistant_id))}>
              Chat with it
            </a>
            {assistant.public && <ShareLink assistantId={assistant.assistant_id} />}
          </div>
        )}
      </div>
      {readOnly && (
        <p className="notice" role="status">
          This public assistant belongs to someone else: you can chat with it but not change it.
        </p>
      )}
      {loaded.schemaError && (
        <p className="error" role="alert">
          Could not load the config form ({loaded.schemaError}). You can still edit the raw JSON.
        </p>
      )}
      <form ref={formRef} className="assistant-form" data-testid="assistant-form" onSubmit={submit} noValidate>
        <fieldset disabled={readOnly || saving} className="plain">
          <div className="field">
            <label htmlFor={nameId}>Name</label>
            <input
              id={nameId}
              data-testid="assistant-name"
              value={name}
              required
              aria-required="true"
              aria-invalid={errors.__name ? true : undefined}
              onChange={(e) => setName(e.target.value)}
              maxLength={200}
            />
            {errors.__name && (
              <p className="error small" role="alert">
                {errors.__name}
              </p>
            )}
          </div>

          <ConfigFields fields={fields} values={values} errors={errors} onChange={setField} />

          <div className="field field-check">
            <input
              id={`${nameId}-public`}
              type="checkbox"
              data-testid="assistant-public"
              checked={isPublic}
              onChange={(e) => setIsPublic(e.target.checked)}
            />
            <label htmlFor={`${nameId}-public`}>Public (anyone with the link can chat with it)</label>
          </div>

          <details className="raw-json" open={fields.length === 0}>
            <summary>Raw config (JSON)</summary>
            <label htmlFor={jsonId} className="sr-only">
              Config as JSON
            </label>
            <textarea
              id={jsonId}
              className="mono"
              data-testid="config-json"
              rows={14}
              spellCheck={false}
              value={jsonText}
              aria-invalid={jsonError ? true : undefined}
              onChange={(e) => onJsonChange(e.target.value)}
            />
            {jsonError && (
              <p className="error small" role="alert" data-testid="config-json-error">
                {jsonError}
              </p>
            )}
          </details>
        </fieldset>

        {!readOnly && (
          <section className="files-section" aria-labelledby={`${nameId}-files`}>
            <h2 id={`${nameId}-files`}>Knowledge files</h2>
            <DropZone onFiles={addFiles} label="Drop files to add them to this assistant" disabled={upload.busy}>
              <div className="drop-hint">
                <p className="muted">
                  Files the assistant can search (for retrieval). Drop files here or{' '}
                  <button type="button" className="link" onClick={() => fileInput.current?.click()} data-testid="assistant-attach">
                    choose files
                  </button>
                  .
                </p>
                <HiddenFileInput
                  inputRef={fileInput}
                  label="Add files to the assistant"
                  testId="assistant-upload-input"
                  onFiles={addFiles}
                />
                {!assistant && staged.length > 0 && (
                  <ul className="staged" aria-label="Files to upload after saving">
                    {staged.map((f, i) => (
                      <li key={`${f.name}-${i}`}>
                        {f.name}{' '}
                        <button type="button" className="link" onClick={() => setStaged((s) => s.filter((_, j) => j !== i))} aria-label={`Remove ${f.name}`}>
                          remove
                        </button>
                      </li>
                    ))}
                  </ul>
                )}
                {!assistant && staged.length > 0 && <p className="hint">They are uploaded when you save.</p>}
                {ownId && (
                  <FileChips
                    label="Files"
                    groups={[
                      {
                        owner: 'assistant',
                        files,
                        onDelete: async (name) => {
                          await api.deleteAssistantFile(ownId, name);
                          setFiles((list) => list.filter((f) => f.filename !== name));
                        },
                      },
                    ]}
                  />
                )}
                {cannotRead && (files.length > 0 || staged.length > 0) && (
                  <p className="notice small files-warning" role="note" data-testid="files-warning">
                    This assistant cannot read its files: choose the RAG bot type, or the agent type
                    with the Retrieval tool.
                  </p>
                )}
                <UploadStatus state={upload.state} onCancel={upload.cancel} onDismiss={upload.dismiss} />
              </div>
            </DropZone>
          </section>
        )}

        {saveError && (
          <p className="error" role="alert" data-testid="form-error">
            {saveError}
          </p>
        )}
        {!readOnly && (
          <div className="form-actions">
            <button type="submit" className="primary" disabled={saving} data-testid="save-assistant">
              {saving ? 'Saving…' : assistant ? 'Save changes' : 'Create assistant'}
            </button>
            {assistant &&
              (confirmDelete ? (
                <span className="confirm-row" role="group" aria-label="Confirm delete">
                  <span>Delete this assistant?</span>
                  <button type="button" className="danger" onClick={remove} disabled={saving} data-testid="confirm-delete-assistant">
                    Delete
                  </button>
                  <button type="button" onClick={() => setConfirmDelete(false)}>
                    Cancel
                  </button>
                </span>
              ) : (
                <button type="button" className="danger-outline" onClick={() => setConfirmDelete(true)} data-testid="delete-assistant">
                  Delete
                </button>
              ))}
          </div>
        )}
      </form>
    </div>
  );
}
