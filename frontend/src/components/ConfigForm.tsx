/** Renders form fields generically from the config schema (see config/form.ts). */
import { useEffect, useId, useState, type ReactNode } from 'react';
import {
  botType,
  defaultToolConfig,
  isFieldVisible,
  type FieldSpec,
  type FormValues,
  type ToolInfo,
  type ToolSelection,
} from '../config/form';

interface FieldsProps {
  fields: readonly FieldSpec[];
  values: FormValues;
  errors?: Record<string, string>;
  onChange(key: string, value: unknown): void;
  disabled?: boolean;
  /** Prefix for element ids / test ids (nested tool configs). */
  idPrefix?: string;
}

export function ConfigFields({ fields, values, errors, onChange, disabled, idPrefix = 'field' }: FieldsProps) {
  const type = botType(values, fields);
  return (
    <>
      {fields
        .filter((f) => isFieldVisible(f, type))
        .map((f) => (
          <Field
            key={f.key}
            field={f}
            value={values[f.key]}
            error={errors?.[f.key]}
            disabled={disabled}
            idPrefix={idPrefix}
            onChange={(v) => onChange(f.key, v)}
          />
        ))}
    </>
  );
}

interface FieldProps {
  field: FieldSpec;
  value: unknown;
  error?: string | undefined;
  disabled?: boolean | undefined;
  idPrefix: string;
  onChange(value: unknown): void;
}

function Field({ field, value, error, disabled, idPrefix, onChange }: FieldProps) {
  const id = `${idPrefix}-${field.key}`;
  const descId = `${id}-desc`;
  const errId = `${id}-error`;
  const describedBy = [field.description ? descId : null, error ? errId : null].filter(Boolean).join(' ') || undefined;
  const common = {
    id,
    'data-testid': id,
    disabled,
    'aria-describedby': describedBy,
    'aria-invalid': error ? true : undefined,
    'aria-required': field.required ? true : undefined,
  } as const;
  const desc = field.description ? (
    <p id={descId} className="hint">
      {field.description}
    </p>
  ) : null;
  const err = error ? (
    <p id={errId} className="error small" role="alert">
      {error}
    </p>
  ) : null;

  switch (field.kind) {
    case 'select': {
      const options = field.options ?? [];
      const v = typeof value === 'string' ? value : value == null ? '' : String(value);
      const known = options.some((o) => o.value === v);
      const chosen = options.find((o) => o.value === v);
      return (
        <div className="field">
          <label htmlFor={id}>{field.title}</label>
          <select {...common} value={v} onChange={(e) => onChange(e.target.value)}>
            {!known && (
              <option value={v}>{v ? `${v} (not available)` : '— choose —'}</option>
            )}
            {options.map((o) => (
              <option key={o.value} value={o.value} disabled={Boolean(o.unavailable) && o.value !== v}>
                {o.unavailable ? `${o.label} — unavailable: ${o.unavailable}` : o.label}
              </option>
            ))}
          </select>
          {desc}
          {chosen?.description && <p className="hint">{chosen.description}</p>}
          {chosen?.unavailable && (
            <p className="hint unavailable-reason" data-testid={`${id}-unavailable`}>
              {chosen.label} is unavailable on this server: {chosen.unavailable}. Choose another one.
            </p>
          )}
          {options.some((o) => o.unavailable && o.value !== v) && (
            <p className="hint" data-testid={`${id}-unavailable-list`}>
              Unavailable here:{' '}
              {options
                .filter((o) => o.unavailable && o.value !== v)
                .map((o) => `${o.label} (${o.unavailable})`)
                .join('; ')}
              .
            </p>
          )}
          {err}
        </div>
      );
    }
    case 'text':
      return (
        <div className="field">
          <label htmlFor={id}>{field.title}</label>
          <input {...common} type="text" value={typeof value === 'string' ? value : ''} onChange={(e) => onChange(e.target.value)} />
          {desc}
          {err}
        </div>
      );
    case 'textarea':
      return (
        <div className="field">
          <label htmlFor={id}>{field.title}</label>
          <textarea {...common} rows={6} value={typeof value === 'string' ? value : ''} onChange={(e) => onChange(e.target.value)} />
          {desc}
          {err}
        </div>
      );
    case 'number':
      return (
        <div className="field">
          <label htmlFor={id}>{field.title}</label>
          <input
            {...common}
            type="number"
            inputMode={field.integer ? 'numeric' : 'decimal'}
            step={field.integer ? 1 : 'any'}
            value={typeof value === 'number' || typeof value === 'string' ? value : ''}
            onChange={(e) => onChange(e.target.value === '' ? '' : Number(e.target.value))}
          />
          {desc}
          {err}
        </div>
      );
    case 'boolean':
      return (
        <div className="field field-check">
          <input {...common} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />
          <label htmlFor={id}>{field.title}</label>
          {desc}
          {err}
        </div>
      );
    case 'multiselect': {
      const selected = new Set(Array.isArray(value) ? value.map(String) : []);
      return (
        <fieldset className="field" aria-describedby={describedBy}>
          <legend>{field.title}</legend>
          {(field.options ?? []).map((o) => (
            <div className="field-check" key={o.value}>
              <input
                id={`${id}-${o.value}`}
                type="checkbox"
                disabled={disabled}
                checked={selected.has(o.value)}
                onChange={(e) => {
                  const next = new Set(selected);
                  if (e.target.checked) next.add(o.value);
                  else next.delete(o.value);
                  onChange([...next]);
                }}
              />
              <label htmlFor={`${id}-${o.value}`}>{o.label}</label>
            </div>
          ))}
          {desc}
          {err}
        </fieldset>
      );
    }
    case 'tools':
      return (
        <ToolsField
          field={field}
          value={Array.isArray(value) ? (value as ToolSelection[]) : []}
          disabled={disabled}
          id={id}
          error={err}
          description={desc}
          onChange={onChange}
        />
      );
    default:
      return <JsonField field={field} value={value} common={common} desc={desc} err={err} onChange={onChange} />;
  }
}

function JsonField({
  field,
  value,
  common,
  desc,
  err,
  onChange,
}: {
  field: FieldSpec;
  value: unknown;
  common: Record<string, unknown>;
  desc: ReactNode;
  err: ReactNode;
  onChange(value: unknown): void;
}) {
  const serialized = value === undefined ? '' : JSON.stringify(value, null, 2);
  const [text, setText] = useState(serialized);
  const [bad, setBad] = useState<string | null>(null);
  useEffect(() => {
    setText(serialized);
    setBad(null);
  }, [serialized]);
  const id = String(common.id);
  return (
    <div className="field">
      <label htmlFor={id}>{field.title} (JSON)</label>
      <textarea
        {...common}
        className="mono"
        rows={4}
        value={text}
        spellCheck={false}
        onChange={(e) => {
          setText(e.target.value);
          if (e.target.value.trim() === '') {
            setBad(null);
            onChange(undefined);
            return;
          }
          try {
            onChange(JSON.parse(e.target.value));
            setBad(null);
          } catch (x) {
            setBad(x instanceof Error ? x.message : 'Invalid JSON');
          }
        }}
      />
      {desc}
      {bad && <p className="error small">{bad}</p>}
      {err}
    </div>
  );
}

function ToolsField({
  field,
  value,
  disabled,
  id,
  error,
  description,
  onChange,
}: {
  field: FieldSpec;
  value: ToolSelection[];
  disabled?: boolean | undefined;
  id: string;
  error: ReactNode;
  description: ReactNode;
  onChange(value: ToolSelection[]): void;
}) {
  const tools = field.tools ?? [];
  const known = new Set(tools.map((t) => t.id));
  const unknown = value.filter((v) => !known.has(v.type));
  const legendId = useId();

  const toggle = (tool: ToolInfo | { id: string }, on: boolean) => {
    if (on) onChange([...value, { type: tool.id, config: defaultToolConfig(tool as ToolInfo) }]);
    else onChange(value.filter((v) => v.type !== tool.id));
  };
  const setToolConfig = (toolId: string, key: string, v: unknown) => {
    onChange(value.map((s) => (s.type === toolId ? { ...s, config: { ...s.config, [key]: v } } : s)));
  };

  return (
    <fieldset className="field tools" data-testid={id} aria-labelledby={legendId}>
      <legend id={legendId}>{field.title}</legend>
      {description}
      <ul className="tool-list">
        {tools.map((tool) => {
          const selection = value.find((v) => v.type === tool.id);
          const checked = Boolean(selection);
          const boxId = `${id}-${tool.id}`;
          const descId = `${boxId}-desc`;
          return (
            <li key={tool.id} className={`tool-option${tool.available ? '' : ' unavailable'}`}>
              <div className="field-check">
                <input
                  id={boxId}
                  type="checkbox"
                  data-testid={`tool-${tool.id}`}
                  checked={checked}
                  disabled={disabled || (!tool.available && !checked)}
                  aria-describedby={descId}
                  onChange={(e) => toggle(tool, e.target.checked)}
                />
                <label htmlFor={boxId}>{tool.name}</label>
              </div>
              <p id={descId} className="hint">
                {tool.description}
                {!tool.available && (
                  <span className="unavailable-reason">
                    {' '}
                    Unavailable{tool.unavailableReason ? `: ${tool.unavailableReason}` : '.'}
                  </span>
                )}
              </p>
              {checked && tool.configFields.length > 0 && selection && (
                <div className="tool-config">
                  <ConfigFields
                    fields={tool.configFields}
                    values={{ ...Object.fromEntries(tool.configFields.map((f) => [f.key, f.default ?? ''])), ...selection.config }}
                    disabled={disabled}
                    idPrefix={`${boxId}-config`}
                    onChange={(key, v) => setToolConfig(tool.id, key, v)}
                  />
                </div>
              )}
            </li>
          );
        })}
        {unknown.map((sel) => (
          <li key={`unknown-${sel.type}`} className="tool-option unavailable">
            <div className="field-check">
              <input
                id={`${id}-unknown-${sel.type}`}
                type="checkbox"
                checked
                disabled={disabled}
                onChange={() => toggle({ id: sel.type }, false)}
              />
              <label htmlFor={`${id}-unknown-${sel.type}`}>{sel.type}</label>
            </div>
            <p className="hint unavailable-reason">This server does not know this tool. Uncheck it to remove it.</p>
          </li>
        ))}
      </ul>
      {error}
    </fieldset>
  );
}
