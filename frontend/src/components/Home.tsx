import { useEffect, useState } from 'react';
import type { Assistant } from '../api/types';
import { configModel, DEFAULT_TYPE, fieldsFromSchema, modelAliases, type FieldAliases } from '../config/form';
import { loadConfigSchema } from '../config/schema';
import { linkClick, paths } from '../lib/router';
import { useApp } from '../state';
import { Icon } from './Icon';

export function Home() {
  const app = useApp();
  useEffect(() => app.setActiveAssistantId(null), [app.setActiveAssistantId]);
  const mine = app.assistants ?? [];
  const mineIds = new Set(mine.map((a) => a.assistant_id));
  const others = (app.publicAssistants ?? []).filter((a) => !mineIds.has(a.assistant_id));
  const aliases = useModelAliases();

  return (
    <div className="page home" data-testid="home">
      <h1>Welcome, {app.user}</h1>
      <p className="lead">Pick an assistant to start a chat, or create a new one.</p>
      <div className="card-grid">
        <a className="card card-new" href={paths.newAssistant()} onClick={linkClick(paths.newAssistant())}>
          <Icon name="plus" size={22} />
          <span className="card-title">Create an assistant</span>
          <span className="muted">Choose a model, instructions and tools.</span>
        </a>
        {mine.map((a) => (
          <AssistantCard key={a.assistant_id} assistant={a} aliases={aliases} />
        ))}
      </div>
      {others.length > 0 && (
        <>
          <h2>Shared with everyone</h2>
          <div className="card-grid">
            {others.map((a) => (
              <AssistantCard key={a.assistant_id} assistant={a} aliases={aliases} />
            ))}
          </div>
        </>
      )}
    </div>
  );
}

/** The model field's names per agent type, from the config schema (undefined until loaded). */
function useModelAliases(): FieldAliases | undefined {
  const [aliases, setAliases] = useState<FieldAliases>();
  useEffect(() => {
    let live = true;
    loadConfigSchema()
      .then((schema) => {
        if (live) setAliases(modelAliases(fieldsFromSchema(schema)));
      })
      // Without the schema a card shows the plain `model` key only.
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, []);
  return aliases;
}

function describe(a: Assistant, aliases: FieldAliases | undefined): string {
  const conf = a.config?.configurable ?? {};
  const type = typeof conf.type === 'string' && conf.type ? conf.type : DEFAULT_TYPE;
  const model = configModel(a.config, aliases);
  return [type, typeof model === 'string' ? model : null].filter(Boolean).join(' · ');
}

function AssistantCard({ assistant, aliases }: { assistant: Assistant; aliases: FieldAliases | undefined }) {
  const href = paths.assistant(assistant.assistant_id);
  return (
    <a className="card" href={href} onClick={linkClick(href)} data-testid="assistant-card">
      <Icon name="chat" size={20} />
      <span className="card-title">{assistant.name || 'Untitled assistant'}</span>
      <span className="muted small">{describe(assistant, aliases)}</span>
    </a>
  );
}
