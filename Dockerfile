FROM node:20-bookworm-slim AS ui
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
WORKDIR /app
ENV PYTHONUNBUFFERED=1 LOOM_HOST=0.0.0.0 LOOM_PORT=8100 LOOM_FRONTEND_DIST=/app/frontend/dist
COPY pyproject.toml README.md ./
COPY backend ./backend
RUN pip install --no-cache-dir .
COPY --from=ui /src/frontend/dist ./frontend/dist
RUN useradd --create-home loom
USER loom
EXPOSE 8100
CMD ["loom", "serve"]
