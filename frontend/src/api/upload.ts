/** File upload to `POST /ingest` with progress (XMLHttpRequest: fetch cannot report upload progress). */
import { authHeaders } from './auth';
import { ApiError, errorFor } from './client';

export type IngestTarget = { assistant_id: string } | { thread_id: string };

export interface UploadProgress {
  loaded: number;
  total: number;
  /** 0..1, or null when the browser cannot tell the total size. */
  fraction: number | null;
}

export interface UploadHandle {
  promise: Promise<unknown>;
  abort(): void;
}

export function ingestConfig(target: IngestTarget): string {
  return JSON.stringify({ configurable: { ...target } });
}

export function uploadFiles(
  files: readonly File[],
  target: IngestTarget,
  onProgress?: (p: UploadProgress) => void,
): UploadHandle {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<unknown>((resolve, reject) => {
    const form = new FormData();
    for (const file of files) form.append('files', file, file.name);
    form.append('config', ingestConfig(target));

    xhr.open('POST', '/ingest');
    xhr.withCredentials = true;
    xhr.setRequestHeader('Accept', 'application/json');
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);

    xhr.upload.onprogress = (ev) => {
      onProgress?.({
        loaded: ev.loaded,
        total: ev.total,
        fraction: ev.lengthComputable && ev.total > 0 ? ev.loaded / ev.total : null,
      });
    };
    xhr.onload = () => {
      let body: unknown = null;
      if (xhr.responseText) {
        try {
          body = JSON.parse(xhr.responseText) as unknown;
        } catch {
          body = xhr.responseText;
        }
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(errorFor(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, 'The upload failed: cannot reach the server.'));
    xhr.onabort = () => reject(new ApiError(0, 'The upload was cancelled.'));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
