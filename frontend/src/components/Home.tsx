import { useEffect } from 'react';
import type { Assistant } from '../api/types';
import { linkClick, paths } from '../lib/router';
import { useApp } from '../state';
import { Icon } from './Icon';

export function Home() {
  const app = useApp();
  useEffect(() => app.setActiveAssistantId(null), [app.setActiveAssistantId]);
  const mine = app.assistants ?? [];
  const mineIds = new Set(mine.map((a) => a.assistant_id));
  const others = (app.publicAssistants ?? []).filter((a) => !mineIds.has(a.assistant_id));

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
          <AssistantCard key={a.assistant_id} assistant={a} />
        ))}
      </div>
      {others.length > 0 && (
        <>
          <h2>Shared with everyone</h2>
          <div className="card-grid">
            {others.map((a) => (
              <AssistantCard key={a.assistant_id} assistant={a} />
            ))}
          </div>
        </>
      )}
    </div>
  );
}

function describe(a: Assistant): string {
  const conf = a.config?.configurable ?? {};
  const type = typeof conf.type === 'string' ? conf.type : 'agent';
  const model =
    conf.model ?? conf[`type==${type}/agent_type`] ?? conf[`type==${type}/llm_type`] ?? conf.agent_type ?? conf.llm_type;
  return [type, typeof model === 'string' ? model : null].filter(Boolean).join(' · ');
}

function AssistantCard({ assistant }: { assistant: Assistant }) {
  const href = paths.assistant(assistant.assistant_id);
  return (
    <a className="card" href={href} onClick={linkClick(href)} data-testid="assistant-card">
      <Icon name="chat" size={20} />
      <span className="card-title">{assistant.name || 'Untitled assistant'}</span>
      <span className="muted small">{describe(assistant)}</span>
    </a>
  );
}
