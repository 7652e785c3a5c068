"""The naive floor: a streaming chat server a user could write in an afternoon.

FastAPI, a one-node ``MessagesState`` graph (LangGraph's default ``add_messages`` state) whose
node calls ``ChatOpenAI``, the stock ``AsyncPostgresSaver`` on a psycopg pool, one uvicorn
process. No auth, no run records, no queue, no resumable streams. ``make bench`` measures Loom
against it.

    python -m benchmarks.naive_server --port 0 --database-url URL --llm-url URL

prints ``ready http://127.0.0.1:PORT`` once it accepts connections. One endpoint::

    POST /threads/{thread_id}/runs/stream
    {"input": {"messages": [{"type": "human", "content": "hi"}]}}

answers SSE: one ``event: messages`` / ``data: {"content": "<token>"}`` per token, then
``event: end`` (or ``event: error`` / ``data: {"message": ...}`` first when the run fails).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import START, MessagesState, StateGraph
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel


class RunInput(BaseModel):
    input: dict[str, Any]


def create_app(database_url: str, llm_url: str, pool_max: int = 20) -> FastAPI:
    model = ChatOpenAI(model="gpt-4o-mini", base_url=llm_url, api_key="naive", streaming=True)

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_edge(START, "model")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncConnectionPool(
            database_url,
            min_size=2,
            max_size=pool_max,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        ) as pool:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await saver.setup()
            app.state.graph = builder.compile(checkpointer=saver)
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/threads/{thread_id}/runs/stream")
    async def stream_run(thread_id: str, body: RunInput) -> StreamingResponse:
        graph = app.state.graph
        config = {"configurable": {"thread_id": thread_id}}

        async def events() -> AsyncIterator[str]:
            try:
                async for chunk, _meta in graph.astream(body.input, config, stream_mode="messages"):
                    if isinstance(chunk, AIMessageChunk) and chunk.content:
                        yield f"event: messages\ndata: {json.dumps({'content': chunk.content})}\n\n"
            except Exception as exc:
                yield f"event: error\ndata: {json.dumps({'message': str(exc)})}\n\n"
            yield "event: end\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


async def serve(server: uvicorn.Server) -> None:
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task  # startup failed: raise its error
            raise SystemExit(1)
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    print(f"ready http://{server.config.host}:{bound}", flush=True)
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description="The naive floor server for make bench")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8300, help="0 = any free port")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--llm-url", required=True, help="OpenAI-compatible base URL")
    parser.add_argument("--pool-max", type=int, default=20, help="Postgres connections")
    args = parser.parse_args()
    app = create_app(args.database_url, args.llm_url, args.pool_max)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    # The event loop `uvicorn.run` would pick (uvloop when installed), as Loom gets.
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve(uvicorn.Server(config)))


if __name__ == "__main__":
    main()
