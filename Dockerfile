FROM node:20-bookworm-slim AS ui
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
WORKDIR /app
# Production with JWT auth by default: the container refuses to start until LOOM_JWT_SECRET
# (32 bytes or more) or LOOM_JWT_PUBLIC_KEY is set. LOOM_ENV=development LOOM_AUTH=cookie
# gives the development cookie mode instead (anyone can claim any user id).
ENV PYTHONUNBUFFERED=1 LOOM_ENV=production LOOM_AUTH=jwt \
    LOOM_HOST=0.0.0.0 LOOM_PORT=8100 LOOM_FRONTEND_DIST=/app/frontend/dist
COPY pyproject.toml README.md ./
COPY backend ./backend
RUN pip install --no-cache-dir .
COPY --from=ui /src/frontend/dist ./frontend/dist
RUN useradd --create-home loom
USER loom
EXPOSE 8100
CMD ["loom", "serve"]
