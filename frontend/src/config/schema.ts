/** The assistant config schema (`GET /runs/config_schema`), fetched once and shared. */
import { api } from '../api/client';

let schemaPromise: Promise<unknown> | null = null;

/** The config schema; a failed request is retried by the next call. */
export function loadConfigSchema(): Promise<unknown> {
  schemaPromise ??= api.getConfigSchema().catch((err: unknown) => {
    schemaPromise = null;
    throw err;
  });
  return schemaPromise;
}
