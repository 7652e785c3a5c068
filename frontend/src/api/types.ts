/** Shapes of the Loom / OpenGPTs REST API as the UI uses them. */

export interface ToolCall {
  id: string;
  name: string;
  args: Record<string, unknown>;
  type?: string;
}

export interface ContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

/** A LangChain-serialised message. */
export interface Message {
  id: string;
  type: string;
  content: string | ContentPart[];
  tool_calls?: ToolCall[];
  invalid_tool_calls?: unknown[];
  tool_call_id?: string;
  name?: string | null;
  status?: string;
  additional_kwargs?: Record<string, unknown>;
  response_metadata?: Record<string, unknown>;
  /** Client-only: the message was added locally and the server has not confirmed it yet. */
  pending?: boolean;
  [key: string]: unknown;
}

export interface AssistantConfigDoc {
  configurable?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface Assistant {
  assistant_id: string;
  name: string;
  config: AssistantConfigDoc;
  public: boolean;
  /** The owner, shown to the owner only: null on someone else's public assistant. */
  user_id: string | null;
  updated_at: string;
}

export interface AssistantInput {
  name: string;
  config: AssistantConfigDoc;
  public: boolean;
}

export interface Thread {
  thread_id: string;
  assistant_id: string | null;
  name: string;
  user_id: string;
  updated_at: string;
  metadata?: Record<string, unknown> | null;
}

export interface ThreadState {
  values: Message[] | { messages?: Message[]; [key: string]: unknown } | null;
  next: string[];
  [key: string]: unknown;
}

export interface RunRecord {
  run_id: string;
  thread_id: string;
  assistant_id: string | null;
  status: string;
  created_at: string;
  [key: string]: unknown;
}

/** `GET /threads/{id}/branches`: per message of the current branch. */
export interface BranchSibling {
  message_id: string;
  /** The newest checkpoint of the branch holding that message (to switch to). */
  checkpoint_id: string;
}

export interface MessageBranchInfo {
  id: string;
  created_at: string | null;
  /** The checkpoint just before this message (fork from it to edit or regenerate it). */
  fork_from: string | null;
  /** Alternatives at this position, oldest first, this message included (when there are some). */
  siblings?: BranchSibling[];
}

export interface Branches {
  head: string | null;
  messages: MessageBranchInfo[];
}

export interface StoredFile {
  filename: string;
  content_type: string | null;
  chunks: number;
  created_at: string;
}

export interface RunInput {
  messages: Message[] | Omit<Message, 'id'>[];
}

export interface RunRequest {
  thread_id: string;
  assistant_id?: string;
  input: RunInput | null;
  config?: { configurable?: Record<string, unknown>; [key: string]: unknown };
}

export type AuthMode = 'cookie' | 'jwt' | 'oidc';

export interface AuthModeInfo {
  mode: AuthMode;
  /** Optional: where to send the browser to sign in with the OIDC provider. */
  login_url?: string;
  [key: string]: unknown;
}
