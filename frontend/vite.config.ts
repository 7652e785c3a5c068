/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Paths that belong to the Loom API. `npm run dev` forwards them to a running backend.
const API_PREFIXES = ['/assistants', '/threads', '/runs', '/ingest', '/health', '/me', '/auth'];
const backend = process.env.LOOM_DEV_BACKEND ?? 'http://127.0.0.1:8100';

export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
  },
  server: {
    port: 5173,
    proxy: Object.fromEntries(
      API_PREFIXES.map((prefix) => [
        // Anchor on a path segment so SPA routes such as /a/:id never match /assistants.
        `^${prefix}(/|\\?|$)`,
        { target: backend, changeOrigin: false },
      ]),
    ),
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
