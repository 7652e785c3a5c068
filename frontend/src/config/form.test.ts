import { describe, expect, it } from 'vitest';
import {
  configModel,
  usesFiles,
  configToForm,
  defaultValues,
  fieldsFromSchema,
  formToConfig,
  isFieldVisible,
  modelAliases,
  validate,
  type FieldSpec,
  type ToolSelection,
} from './form';

/** Where the server reads the model, per bot type (the schema's `x-model-fields`). */
const MODEL_FIELDS = {
  agent: ['agent_type', 'llm_type', 'model'],
  chatbot: ['llm_type', 'agent_type', 'model'],
  chat_retrieval: ['llm_type', 'agent_type', 'model'],
};

const SCHEMA = {
  type: 'object',
  properties: {
    configurable: {
      type: 'object',
      properties: {
        type: {
          title: 'Agent type',
          type: 'string',
          enum: ['agent', 'chatbot', 'chat_retrieval'],
          default: 'agent',
          'x-enum-labels': { agent: 'Agent (tools)', chatbot: 'Chatbot', chat_retrieval: 'RAG' },
          'x-enum-descriptions': { agent: 'Uses tools' },
        },
        model: {
          title: 'Model',
          type: 'string',
          enum: ['gpt-4o-mini', 'gpt-4o', 'claude-3-haiku'],
          default: 'gpt-4o-mini',
          'x-enum-labels': {
            'gpt-4o-mini': 'GPT 4o Mini',
            'gpt-4o': 'GPT 4o',
            'claude-3-haiku': 'Claude 3 Haiku',
          },
          'x-model-fields': MODEL_FIELDS,
        },
        system_message: {
          title: 'Instructions',
          type: 'string',
          default: 'You are a helpful assistant.',
          'x-widget': 'textarea',
        },
        tools: {
          title: 'Tools',
          type: 'array',
          items: {
            type: 'object',
            properties: { type: { type: 'string', enum: ['wikipedia', 'ddg_search', 'retrieval'] } },
            required: ['type'],
          },
          default: [],
          'x-tools': [
            { id: 'wikipedia', name: 'Wikipedia', description: 'Searches Wikipedia', available: true },
            {
              id: 'ddg_search',
              name: 'DDG Search',
              description: 'Web search',
              available: false,
              unavailable_reason: 'No network',
              config_schema: {
                type: 'object',
                properties: { max_results: { type: 'integer', default: 3 } },
              },
            },
            { id: 'retrieval', name: 'Retrieval', description: 'Your files', available: true },
          ],
          'x-applies-to': ['agent'],
        },
        interrupt_before_action: {
          title: 'Ask before using tools',
          type: 'boolean',
          default: false,
          'x-applies-to': ['agent'],
        },
        retrieval_description: {
          title: 'Retrieval description',
          type: 'string',
          'x-applies-to': ['agent', 'chat_retrieval'],
        },
      },
    },
  },
};

const fields = fieldsFromSchema(SCHEMA);
const byKey = Object.fromEntries(fields.map((f) => [f.key, f]));

describe('fieldsFromSchema', () => {
  it('maps schema types to widgets', () => {
    expect(fields.map((f) => [f.key, f.kind])).toEqual([
      ['type', 'select'],
      ['model', 'select'],
      ['system_message', 'textarea'],
      ['tools', 'tools'],
      ['interrupt_before_action', 'boolean'],
      ['retrieval_description', 'text'],
    ]);
    expect(byKey.type!.options).toEqual([
      { value: 'agent', label: 'Agent (tools)', description: 'Uses tools' },
      { value: 'chatbot', label: 'Chatbot' },
      { value: 'chat_retrieval', label: 'RAG' },
    ]);
    expect(byKey.tools!.appliesTo).toEqual(['agent']);
    expect(byKey.model!.aliases).toEqual(MODEL_FIELDS);
    expect(modelAliases(fields)).toEqual(MODEL_FIELDS);
    expect(byKey.system_message!.aliases).toBeUndefined();
    const ddg = byKey.tools!.tools!.find((t) => t.id === 'ddg_search')!;
    expect(ddg.available).toBe(false);
    expect(ddg.unavailableReason).toBe('No network');
    expect(ddg.configFields.map((f) => [f.key, f.kind, f.integer])).toEqual([
      ['max_results', 'number', true],
    ]);
  });

  it('follows $ref and pydantic-style optional fields', () => {
    const schema = {
      $defs: { Conf: { type: 'object', properties: { n: { anyOf: [{ type: 'integer' }, { type: 'null' }] } } } },
      properties: { configurable: { $ref: '#/$defs/Conf' } },
    };
    expect(fieldsFromSchema(schema).map((f) => f.kind)).toEqual(['number']);
  });

  it('returns no fields for a non-schema', () => {
    expect(fieldsFromSchema(null)).toEqual([]);
    expect(fieldsFromSchema({})).toEqual([]);
  });
});

describe('config -> form', () => {
  it('fills defaults for an empty config', () => {
    expect(configToForm({}, fields)).toEqual({
      type: 'agent',
      model: 'gpt-4o-mini',
      system_message: 'You are a helpful assistant.',
      tools: [],
      interrupt_before_action: false,
      retrieval_description: '',
    });
    expect(defaultValues(fields)).toEqual(configToForm(undefined, fields));
  });

  it('reads plain keys', () => {
    const values = configToForm(
      {
        configurable: {
          type: 'agent',
          model: 'gpt-4o',
          system_message: 'Be brief.',
          tools: [{ type: 'wikipedia', config: {} }],
          interrupt_before_action: true,
        },
      },
      fields,
    );
    expect(values).toMatchObject({
      type: 'agent',
      model: 'gpt-4o',
      system_message: 'Be brief.',
      tools: [{ type: 'wikipedia', config: {} }],
      interrupt_before_action: true,
    });
  });

  it("reads OpenGPTs' prefixed keys, tool names and model labels", () => {
    const values = configToForm(
      {
        configurable: {
          type: 'agent',
          'type==agent/agent_type': 'GPT 4o',
          'type==agent/system_message': 'Old instructions',
          'type==agent/tools': ['Wikipedia', 'DDG Search'],
          'type==agent/interrupt_before_action': true,
          'type==chatbot/llm_type': 'Claude 3 Haiku',
          'type==chatbot/system_message': 'Chatbot instructions',
        },
      },
      fields,
    );
    expect(values).toMatchObject({
      type: 'agent',
      model: 'gpt-4o',
      system_message: 'Old instructions',
      tools: [
        { type: 'wikipedia', config: {} },
        { type: 'ddg_search', config: {} },
      ],
      interrupt_before_action: true,
    });
  });

  it('reads the fields of the chosen type only', () => {
    const values = configToForm(
      {
        configurable: {
          type: 'chatbot',
          'type==agent/system_message': 'agent',
          'type==chatbot/llm_type': 'claude-3-haiku',
          'type==chatbot/system_message': 'chatbot',
        },
      },
      fields,
    );
    expect(values.model).toBe('claude-3-haiku');
    expect(values.system_message).toBe('chatbot');
  });

  it('prefers the prefixed key over the plain one, like the server', () => {
    const values = configToForm(
      { configurable: { type: 'agent', system_message: 'plain', 'type==agent/system_message': 'prefixed' } },
      fields,
    );
    expect(values.system_message).toBe('prefixed');
  });

  it('reads OpenGPTs tool objects and keeps unknown tools and models', () => {
    const values = configToForm(
      {
        configurable: {
          'type==agent/agent_type': 'Some Retired Model',
          'type==agent/tools': [
            { id: 'e5c7…', type: 'retrieval', name: 'Retrieval', config: { k: 4 } },
            { id: 'x', type: 'mystery_tool', name: 'Mystery', config: {} },
          ],
        },
      },
      fields,
    );
    expect(values.tools).toEqual([
      { type: 'retrieval', config: { k: 4 } },
      { type: 'mystery_tool', config: {} },
    ]);
    expect(values.model).toBe('Some Retired Model');
    expect(validate(values, fields).model).toMatch(/not one of/);
  });

  it('keeps previous values of fields hidden for the new type', () => {
    const previous = configToForm(
      { configurable: { type: 'agent', tools: [{ type: 'wikipedia', config: {} }] } },
      fields,
    );
    const values = configToForm({ configurable: { type: 'chatbot' } }, fields, previous);
    expect(values.tools).toEqual([{ type: 'wikipedia', config: {} }]);
    // A visible field missing from the config goes back to its default.
    const again = configToForm({ configurable: { type: 'agent' } }, fields, previous);
    expect(again.tools).toEqual([]);
  });
});

describe('form -> config', () => {
  it('writes plain keys', () => {
    const values = {
      ...defaultValues(fields),
      model: 'gpt-4o',
      tools: [{ type: 'wikipedia', config: {} }] satisfies ToolSelection[],
      interrupt_before_action: true,
    };
    expect(formToConfig(values, fields)).toEqual({
      configurable: {
        type: 'agent',
        model: 'gpt-4o',
        system_message: 'You are a helpful assistant.',
        tools: [{ type: 'wikipedia', config: {} }],
        interrupt_before_action: true,
      },
    });
  });

  it('omits fields that do not apply to the chosen type', () => {
    const values = { ...defaultValues(fields), type: 'chatbot', tools: [{ type: 'wikipedia', config: {} }] };
    const config = formToConfig(values, fields);
    expect(config.configurable).toEqual({
      type: 'chatbot',
      model: 'gpt-4o-mini',
      system_message: 'You are a helpful assistant.',
    });
    expect(isFieldVisible(byKey.tools!, 'chatbot')).toBe(false);
    expect(isFieldVisible(byKey.retrieval_description!, 'chat_retrieval')).toBe(true);
  });

  it('rewrites an OpenGPTs config in plain keys and keeps unknown keys', () => {
    const legacy = {
      configurable: {
        type: 'agent',
        'type==agent/agent_type': 'GPT 4o',
        'type==agent/system_message': 'Old',
        'type==agent/tools': ['Wikipedia'],
        'type==chatbot/llm_type': 'GPT 4o',
        agent_type: 'GPT 4o Mini',
        recursion_limit: 10,
      },
      tags: ['x'],
    };
    const config = formToConfig(configToForm(legacy, fields), fields, legacy);
    expect(config).toEqual({
      configurable: {
        type: 'agent',
        model: 'gpt-4o',
        system_message: 'Old',
        tools: [{ type: 'wikipedia', config: {} }],
        interrupt_before_action: false,
        recursion_limit: 10,
      },
      tags: ['x'],
    });
    // The result reads back to the same form values.
    expect(configToForm(config, fields)).toEqual(configToForm(legacy, fields));
  });

  it('round-trips form values', () => {
    const values = {
      type: 'agent',
      model: 'claude-3-haiku',
      system_message: 'Hi',
      tools: [{ type: 'ddg_search', config: { max_results: 5 } }],
      interrupt_before_action: true,
      retrieval_description: 'Docs about X',
    };
    expect(configToForm(formToConfig(values, fields), fields)).toEqual(values);
  });

  it('leaves the config alone when the schema is unknown', () => {
    const legacy = { configurable: { 'type==agent/system_message': 'x' } };
    expect(formToConfig({}, [], legacy)).toEqual(legacy);
  });
});

/** The test schema with the model field's `x-model-fields` replaced (or removed: undefined). */
function withModelFields(modelFields: unknown): FieldSpec[] {
  const schema = JSON.parse(JSON.stringify(SCHEMA)) as typeof SCHEMA;
  const model = schema.properties.configurable.properties.model as Record<string, unknown>;
  if (modelFields === undefined) delete model['x-model-fields'];
  else model['x-model-fields'] = modelFields;
  return fieldsFromSchema(schema);
}

describe('model field names from the schema', () => {
  it('reads the names the schema lists for the bot type, in its order', () => {
    const custom = withModelFields({ agent: ['brain', 'model'], echo: ['voice', 'model'] });
    const conf = { type: 'echo', voice: 'gpt-4o', model: 'claude-3-haiku', llm_type: 'x' };
    expect(configToForm({ configurable: conf }, custom).model).toBe('gpt-4o');
    expect(configToForm({ configurable: { ...conf, 'type==echo/model': 'GPT 4o' } }, custom).model).toBe(
      'gpt-4o',
    );
    // a name of another type is not read; a bot type the schema does not list reads `model`
    expect(configToForm({ configurable: { type: 'agent', voice: 'gpt-4o' } }, custom).model).toBe('gpt-4o-mini');
    expect(configToForm({ configurable: { type: 'chatbot', llm_type: 'gpt-4o' } }, custom).model).toBe(
      'gpt-4o-mini',
    );
    expect(configToForm({ configurable: { type: 'chatbot', model: 'gpt-4o' } }, custom).model).toBe('gpt-4o');
  });

  it('drops every listed name when writing the plain key', () => {
    const custom = withModelFields({ agent: ['brain', 'model'], echo: ['voice', 'model'] });
    const base = { configurable: { type: 'agent', brain: 'gpt-4o', voice: 'GPT 4o', llm_type: 'kept' } };
    const config = formToConfig(configToForm(base, custom), custom, base);
    expect(config.configurable).toMatchObject({ type: 'agent', model: 'gpt-4o', llm_type: 'kept' });
    expect(config.configurable).not.toHaveProperty('brain');
    expect(config.configurable).not.toHaveProperty('voice');
  });

  it('falls back to the plain model key without x-model-fields', () => {
    for (const bare of [withModelFields(undefined), withModelFields('nonsense')]) {
      expect(modelAliases(bare) ?? {}).toEqual({});
      const legacy = { configurable: { type: 'agent', agent_type: 'GPT 4o', model: 'claude-3-haiku' } };
      expect(configToForm(legacy, bare).model).toBe('claude-3-haiku');
      expect(configToForm({ configurable: { agent_type: 'GPT 4o' } }, bare).model).toBe('gpt-4o-mini');
    }
  });

  it('names the model of a stored config like the server (the home page cards)', () => {
    const aliases = modelAliases(fields);
    expect(configModel({ configurable: { 'type==agent/agent_type': 'GPT 4o', model: 'x' } }, aliases)).toBe(
      'GPT 4o',
    );
    expect(
      configModel({ configurable: { type: 'chatbot', agent_type: 'a', 'type==chatbot/llm_type': 'b' } }, aliases),
    ).toBe('b');
    expect(configModel({ configurable: { type: 'chatbot', agent_type: 'a' } }, aliases)).toBe('a');
    expect(configModel({ configurable: { model: 'gpt-4o' } }, aliases)).toBe('gpt-4o');
    expect(configModel({ configurable: { agent_type: 'GPT 4o' } }, undefined)).toBeUndefined();
    expect(configModel({ configurable: { model: 'gpt-4o' } }, undefined)).toBe('gpt-4o');
    expect(configModel(null, aliases)).toBeUndefined();
  });
});

describe('unavailable choices and files', () => {
  const schema = {
    properties: {
      configurable: {
        properties: {
          type: { type: 'string', enum: ['agent', 'chatbot', 'chat_retrieval'], default: 'agent' },
          model: {
            type: 'string',
            enum: ['gpt-4o-mini', 'azure-openai'],
            'x-enum-unavailable': { 'azure-openai': 'AZURE_OPENAI_ENDPOINT is not set' },
          },
          tools: {
            type: 'array',
            'x-tools': [{ id: 'retrieval', name: 'Retrieval', available: true }, { id: 'wikipedia', name: 'Wikipedia', available: true }],
          },
        },
      },
    },
  };
  const fields = fieldsFromSchema(schema);

  it('marks models the server cannot use, and refuses them', () => {
    const model = fields.find((f) => f.key === 'model')!;
    expect(model.options!.find((o) => o.value === 'azure-openai')!.unavailable).toBe('AZURE_OPENAI_ENDPOINT is not set');
    expect(model.options!.find((o) => o.value === 'gpt-4o-mini')!.unavailable).toBeUndefined();
    expect(validate({ type: 'agent', model: 'azure-openai', tools: [] }, fields).model).toMatch(/unavailable/);
  });

  it('tells whether an assistant reads uploaded files', () => {
    expect(usesFiles({ configurable: { type: 'chat_retrieval' } }, fields)).toBe(true);
    expect(usesFiles({ configurable: { type: 'chatbot' } }, fields)).toBe(false);
    expect(usesFiles({ configurable: { type: 'agent', tools: ['Wikipedia'] } }, fields)).toBe(false);
    expect(usesFiles({ configurable: { type: 'agent', tools: [{ type: 'retrieval' }] } }, fields)).toBe(true);
    expect(usesFiles({ configurable: { type: 'agent', 'type==agent/tools': ['Retrieval'] } }, fields)).toBe(true);
  });
});
