/**
 * Assistant config <-> form values, driven by the JSON Schema of `GET /runs/config_schema`.
 *
 * Reading understands both spellings of `config.configurable`: Loom's plain keys
 * (`system_message`, `model`, `tools: [{type, config}]`) and OpenGPTs' prefixed keys
 * (`"type==agent/system_message"`, `"type==agent/agent_type"`, tools as names such as
 * `"Wikipedia"`). For a field `f` of bot type `T` the prefixed `"type==T/f"` wins over `f`, as on
 * the server. The model's field has other names per bot type (OpenGPTs' `agent_type`,
 * `llm_type`): the schema lists them in `x-model-fields`, in the order the server reads them.
 * Writing always uses plain keys and drops the prefixed ones and the other names (they would win
 * otherwise); keys the form does not know are kept.
 */

export type JSONSchema = Record<string, unknown>;

export interface EnumOption {
  value: string;
  label: string;
  description?: string;
  /** Why the server cannot use this value now (`x-enum-unavailable`), if it cannot. */
  unavailable?: string;
}

export interface ToolInfo {
  id: string;
  name: string;
  description: string;
  available: boolean;
  unavailableReason: string | null;
  /** Fields of the tool's own config (from its `config_schema`). */
  configFields: FieldSpec[];
}

export type FieldKind =
  | 'select'
  | 'text'
  | 'textarea'
  | 'boolean'
  | 'number'
  | 'tools'
  | 'multiselect'
  | 'json';

export interface FieldSpec {
  key: string;
  kind: FieldKind;
  title: string;
  description?: string;
  default: unknown;
  hasDefault: boolean;
  required: boolean;
  integer?: boolean;
  options?: EnumOption[];
  tools?: ToolInfo[];
  /** Bot types the field applies to (`x-applies-to`); undefined = all. */
  appliesTo?: string[];
  /**
   * Per bot type, the config keys that hold this field's value, in the order they are read
   * (`x-model-fields` of the model field); a bot type not listed reads the field's own key.
   */
  aliases?: FieldAliases;
}

/** Bot type -> the config keys read for one field, first set one wins. */
export type FieldAliases = Record<string, string[]>;

export interface ToolSelection {
  type: string;
  config: Record<string, unknown>;
}

export type FormValues = Record<string, unknown>;

export interface AssistantConfig {
  configurable?: Record<string, unknown>;
  [key: string]: unknown;
}

/** The discriminating field: which kind of bot. */
export const TYPE_KEY = 'type';
export const DEFAULT_TYPE = 'agent';
/** The field naming the model; its other names per bot type come from `x-model-fields`. */
export const MODEL_KEY = 'model';

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/* ------------------------------------------------------------------ */
/* Schema -> field specs                                               */
/* ------------------------------------------------------------------ */

function resolveRef(node: unknown, root: JSONSchema, depth = 0): JSONSchema {
  if (!isRecord(node) || depth > 20) return {};
  let current: JSONSchema = node;
  const ref = current.$ref;
  if (typeof ref === 'string' && ref.startsWith('#/')) {
    let target: unknown = root;
    for (const seg of ref.slice(2).split('/')) {
      target = isRecord(target) ? target[seg.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
    }
    const { $ref: _ignored, ...rest } = current;
    current = { ...resolveRef(target, root, depth + 1), ...rest };
  }
  // `allOf: [{$ref}]` is how pydantic attaches a title/default to a referenced schema.
  if (Array.isArray(current.allOf) && current.allOf.length === 1) {
    const { allOf, ...rest } = current;
    current = { ...resolveRef(allOf[0], root, depth + 1), ...rest };
  }
  // Optional values: `anyOf: [{...}, {type: null}]`.
  if (Array.isArray(current.anyOf)) {
    const nonNull = current.anyOf.filter((s) => !(isRecord(s) && s.type === 'null'));
    if (nonNull.length === 1) {
      const { anyOf: _a, ...rest } = current;
      current = { ...resolveRef(nonNull[0], root, depth + 1), ...rest };
    }
  }
  return current;
}

function schemaType(s: JSONSchema): string | undefined {
  const t = s.type;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) return t.find((x): x is string => typeof x === 'string' && x !== 'null');
  return undefined;
}

function enumOptions(s: JSONSchema): EnumOption[] {
  const values = Array.isArray(s.enum) ? s.enum : [];
  const labels = isRecord(s['x-enum-labels']) ? s['x-enum-labels'] : {};
  const descriptions = isRecord(s['x-enum-descriptions']) ? s['x-enum-descriptions'] : {};
  const unavailable = isRecord(s['x-enum-unavailable']) ? s['x-enum-unavailable'] : {};
  return values
    .filter((v) => v !== null)
    .map((v) => {
      const value = String(v);
      const label = labels[value];
      const description = descriptions[value];
      const opt: EnumOption = { value, label: typeof label === 'string' ? label : value };
      if (typeof description === 'string') opt.description = description;
      if (value in unavailable) {
        const reason = unavailable[value];
        opt.unavailable = typeof reason === 'string' && reason ? reason : 'not configured on this server';
      }
      return opt;
    });
}

function parseAliases(raw: unknown): FieldAliases | undefined {
  if (!isRecord(raw)) return undefined;
  const aliases: FieldAliases = {};
  for (const [type, names] of Object.entries(raw)) {
    if (!Array.isArray(names)) continue;
    const valid = names.filter((n): n is string => typeof n === 'string' && n !== '');
    if (valid.length > 0) aliases[type] = valid;
  }
  return aliases;
}

function toolInfos(list: unknown, root: JSONSchema): ToolInfo[] {
  if (!Array.isArray(list)) return [];
  return list.filter(isRecord).map((t) => {
    const id = String(t.id ?? t.type ?? t.name ?? '');
    return {
      id,
      name: typeof t.name === 'string' ? t.name : id,
      description: typeof t.description === 'string' ? t.description : '',
      available: t.available !== false,
      unavailableReason: typeof t.unavailable_reason === 'string' ? t.unavailable_reason : null,
      configFields: isRecord(t.config_schema) ? objectFields(t.config_schema, root) : [],
    };
  });
}

function fieldFrom(key: string, raw: unknown, root: JSONSchema, required: boolean): FieldSpec {
  const s = resolveRef(raw, root);
  const type = schemaType(s);
  const title = typeof s.title === 'string' ? s.title : key;
  const spec: FieldSpec = {
    key,
    kind: 'json',
    title,
    default: s.default,
    hasDefault: 'default' in s,
    required,
  };
  if (typeof s.description === 'string') spec.description = s.description;
  if (Array.isArray(s['x-applies-to'])) {
    spec.appliesTo = s['x-applies-to'].filter((x): x is string => typeof x === 'string');
  }
  const aliases = parseAliases(s['x-model-fields']);
  if (aliases) spec.aliases = aliases;
  const items = resolveRef(s.items, root);
  if (Array.isArray(s['x-tools'])) {
    spec.kind = 'tools';
    spec.tools = toolInfos(s['x-tools'], root);
  } else if (Array.isArray(s.enum)) {
    spec.kind = 'select';
    spec.options = enumOptions(s);
  } else if (type === 'boolean') {
    spec.kind = 'boolean';
  } else if (type === 'string') {
    spec.kind = s['x-widget'] === 'textarea' || s.format === 'textarea' ? 'textarea' : 'text';
  } else if (type === 'number' || type === 'integer') {
    spec.kind = 'number';
    spec.integer = type === 'integer';
  } else if (type === 'array' && Array.isArray(items.enum)) {
    spec.kind = 'multiselect';
    spec.options = enumOptions(items);
  }
  return spec;
}

function objectFields(schema: unknown, root: JSONSchema): FieldSpec[] {
  const s = resolveRef(schema, root);
  if (!isRecord(s.properties)) return [];
  const required = new Set(Array.isArray(s.required) ? s.required.map(String) : []);
  return Object.entries(s.properties).map(([key, prop]) =>
    fieldFrom(key, prop, root, required.has(key)),
  );
}

/** The form fields described by the config schema (its `configurable` object). */
export function fieldsFromSchema(schema: unknown): FieldSpec[] {
  if (!isRecord(schema)) return [];
  const root = resolveRef(schema, schema);
  const props = isRecord(root.properties) ? root.properties : {};
  if ('configurable' in props) return objectFields(props.configurable, schema);
  return objectFields(root, schema);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

export function typeField(fields: readonly FieldSpec[]): FieldSpec | undefined {
  return fields.find((f) => f.key === TYPE_KEY);
}

export function botType(values: FormValues, fields: readonly FieldSpec[]): string {
  const v = values[TYPE_KEY];
  if (typeof v === 'string' && v) return v;
  const d = typeField(fields)?.default;
  return typeof d === 'string' && d ? d : DEFAULT_TYPE;
}

export function isFieldVisible(field: FieldSpec, type: string): boolean {
  return !field.appliesTo || field.appliesTo.includes(type);
}

function emptyValue(field: FieldSpec): unknown {
  switch (field.kind) {
    case 'boolean':
      return false;
    case 'tools':
    case 'multiselect':
      return [];
    case 'number':
      return '';
    case 'json':
      return undefined;
    default:
      return '';
  }
}

function defaultOf(field: FieldSpec): unknown {
  if (field.hasDefault && field.default !== undefined && field.default !== null) {
    return field.kind === 'tools'
      ? toTools(field.default, field.tools ?? [])
      : clone(field.default);
  }
  return emptyValue(field);
}

export function defaultValues(fields: readonly FieldSpec[]): FormValues {
  const values: FormValues = {};
  for (const f of fields) values[f.key] = defaultOf(f);
  return values;
}

/** Default config of a tool being switched on (from its config schema). */
export function defaultToolConfig(tool: ToolInfo | undefined): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const f of tool?.configFields ?? []) {
    if (f.hasDefault && f.default !== undefined) config[f.key] = clone(f.default);
  }
  return config;
}

const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');

/** Find the option (or tool) id a legacy value stands for: by id, then label, loosely. */
function matchId(raw: string, candidates: { id: string; label: string }[]): string | null {
  const exact = candidates.find((c) => c.id === raw);
  if (exact) return exact.id;
  const lower = raw.toLowerCase();
  const ci = candidates.find((c) => c.id.toLowerCase() === lower || c.label.toLowerCase() === lower);
  if (ci) return ci.id;
  const n = norm(raw);
  if (!n) return null;
  const loose = candidates.find((c) => norm(c.id) === n || norm(c.label) === n);
  return loose ? loose.id : null;
}

function toTools(raw: unknown, tools: readonly ToolInfo[]): ToolSelection[] {
  if (!Array.isArray(raw)) return [];
  const candidates = tools.map((t) => ({ id: t.id, label: t.name }));
  const out: ToolSelection[] = [];
  for (const entry of raw) {
    if (typeof entry === 'string') {
      out.push({ type: matchId(entry, candidates) ?? entry, config: {} });
    } else if (isRecord(entry)) {
      const names = [entry.type, entry.name, entry.id].filter(
        (x): x is string => typeof x === 'string' && x !== '',
      );
      let type: string | null = null;
      for (const n of names) {
        type = matchId(n, candidates);
        if (type) break;
      }
      out.push({
        type: type ?? names[0] ?? 'unknown',
        config: isRecord(entry.config) ? clone(entry.config) : {},
      });
    }
  }
  return out;
}

function readKey(conf: Record<string, unknown>, type: string, name: string): unknown {
  const prefixed = `type==${type}/${name}`;
  if (prefixed in conf) return conf[prefixed];
  return conf[name];
}

function readNames(conf: Record<string, unknown>, type: string, names: readonly string[]): unknown {
  for (const name of names) {
    const v = readKey(conf, type, name);
    if (v !== undefined && v !== null) return v;
  }
  return undefined;
}

function readField(conf: Record<string, unknown>, type: string, field: FieldSpec): unknown {
  return readNames(conf, type, field.aliases?.[type] ?? [field.key]);
}

/** The model field's names per bot type (`x-model-fields` of a config schema), if it has them. */
export function modelAliases(fields: readonly FieldSpec[]): FieldAliases | undefined {
  return fields.find((f) => f.key === MODEL_KEY)?.aliases;
}

/**
 * The model a stored config names (either spelling), as the server reads it; only the plain
 * `model` key is known without the schema's aliases.
 */
export function configModel(config: unknown, aliases?: FieldAliases): unknown {
  const doc = isRecord(config) ? config : {};
  const conf = isRecord(doc.configurable) ? doc.configurable : {};
  const rawType = conf[TYPE_KEY];
  const type = typeof rawType === 'string' && rawType ? rawType : DEFAULT_TYPE;
  return readNames(conf, type, aliases?.[type] ?? [MODEL_KEY]);
}

function coerce(field: FieldSpec, raw: unknown): unknown {
  switch (field.kind) {
    case 'select': {
      if (typeof raw !== 'string' && typeof raw !== 'number') return defaultOf(field);
      const value = String(raw);
      const options = (field.options ?? []).map((o) => ({ id: o.value, label: o.label }));
      return matchId(value, options) ?? value;
    }
    case 'text':
    case 'textarea':
      return typeof raw === 'string' ? raw : raw == null ? defaultOf(field) : String(raw);
    case 'boolean':
      return typeof raw === 'boolean' ? raw : raw === 'true' ? true : raw === 'false' ? false : defaultOf(field);
    case 'number':
      return typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' && !Number.isNaN(Number(raw)) ? Number(raw) : defaultOf(field);
    case 'tools':
      return toTools(raw, field.tools ?? []);
    case 'multiselect':
      return Array.isArray(raw) ? raw.map(String) : defaultOf(field);
    default:
      return clone(raw);
  }
}

/**
 * Form values of a stored config (either spelling). `previous` values are kept for fields the
 * config does not mention that are hidden for its bot type (switching the type back keeps them).
 */
export function configToForm(
  config: unknown,
  fields: readonly FieldSpec[],
  previous?: FormValues,
): FormValues {
  const doc = isRecord(config) ? config : {};
  const conf = isRecord(doc.configurable) ? doc.configurable : {};
  const tf = typeField(fields);
  const rawType = conf[TYPE_KEY];
  const type =
    typeof rawType === 'string' && rawType
      ? rawType
      : typeof tf?.default === 'string'
        ? tf.default
        : DEFAULT_TYPE;

  const values: FormValues = {};
  for (const f of fields) {
    if (f.key === TYPE_KEY) {
      values[f.key] = type;
      continue;
    }
    const raw = readField(conf, type, f);
    if (raw === undefined) {
      values[f.key] =
        previous && f.key in previous && !isFieldVisible(f, type)
          ? clone(previous[f.key])
          : defaultOf(f);
    } else {
      values[f.key] = coerce(f, raw);
    }
  }
  return values;
}

function serialize(field: FieldSpec, value: unknown): unknown {
  switch (field.kind) {
    case 'select':
    case 'text':
    case 'textarea': {
      const s = typeof value === 'string' ? value : value == null ? '' : String(value);
      if (s === '' && !field.hasDefault && !field.required) return undefined;
      return s;
    }
    case 'boolean':
      return value === true;
    case 'number': {
      if (value === '' || value === null || value === undefined) return undefined;
      const n = Number(value);
      if (Number.isNaN(n)) return undefined;
      return field.integer ? Math.trunc(n) : n;
    }
    case 'tools':
      return (Array.isArray(value) ? (value as ToolSelection[]) : []).map((t) => ({
        type: t.type,
        config: isRecord(t.config) ? clone(t.config) : {},
      }));
    case 'multiselect':
      return Array.isArray(value) ? value.map(String) : [];
    default:
      return value === undefined ? undefined : clone(value);
  }
}

/**
 * The config to store for these form values, in plain keys. Keys of `base` (the config being
 * edited) that the form does not manage are kept; OpenGPTs' prefixed keys and the old model
 * keys are dropped because the plain keys now hold their values.
 */
export function formToConfig(
  values: FormValues,
  fields: readonly FieldSpec[],
  base?: unknown,
): AssistantConfig {
  const doc = isRecord(base) ? base : {};
  if (fields.length === 0) return clone(doc) as AssistantConfig;
  const baseConf = isRecord(doc.configurable) ? doc.configurable : {};
  const type = botType(values, fields);
  const managed = new Set(fields.map((f) => f.key));
  for (const f of fields) {
    for (const names of Object.values(f.aliases ?? {})) for (const n of names) managed.add(n);
  }
  managed.add(TYPE_KEY);

  const configurable: Record<string, unknown> = {};
  configurable[TYPE_KEY] = type;
  for (const f of fields) {
    if (f.key === TYPE_KEY || !isFieldVisible(f, type)) continue;
    const out = serialize(f, values[f.key]);
    if (out !== undefined) configurable[f.key] = out;
  }
  for (const [key, value] of Object.entries(baseConf)) {
    if (key.startsWith('type==') || managed.has(key) || key in configurable) continue;
    configurable[key] = clone(value);
  }
  return { ...clone(doc), configurable };
}

/** Check the values before saving; returns messages keyed by field. */
export function validate(values: FormValues, fields: readonly FieldSpec[]): Record<string, string> {
  const errors: Record<string, string> = {};
  const type = botType(values, fields);
  for (const f of fields) {
    if (!isFieldVisible(f, type)) continue;
    const v = values[f.key];
    if (f.required && (v === '' || v === undefined || v === null)) {
      errors[f.key] = `${f.title} is required.`;
    }
    if (f.kind === 'number' && v !== '' && v !== undefined && Number.isNaN(Number(v))) {
      errors[f.key] = `${f.title} must be a number.`;
    }
    if (f.kind === 'select' && typeof v === 'string' && v !== '' && f.options) {
      const option = f.options.find((o) => o.value === v);
      if (!option) {
        errors[f.key] = `"${v}" is not one of the available choices.`;
      } else if (option.unavailable) {
        errors[f.key] = `${option.label} is unavailable on this server (${option.unavailable}).`;
      }
    }
  }
  return errors;
}

/** Whether an assistant with this config reads the files uploaded to it and its threads. */
export function usesFiles(config: unknown, fields: readonly FieldSpec[]): boolean {
  const values = configToForm(config, fields);
  const type = botType(values, fields);
  if (type === 'chat_retrieval') return true;
  if (type !== 'agent') return false;
  const tools = Array.isArray(values.tools) ? (values.tools as ToolSelection[]) : [];
  return tools.some((t) => t.type === 'retrieval' || /retriev|file_search/i.test(t.type));
}
