"""Cursor pagination of every native list, and ``/history`` pages and fields.

A list walked page by page (``limit``, then the ``Link: <...>; rel="next"`` URLs) gives every
item exactly once, in the list's order, even with items added between pages; the last page
has no ``Link``. Bodies stay bare arrays.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from chatkit.types import AssistantMessageItem, ItemFeedbackParams, ItemsFeedbackReq

from tests.conftest import LoomServer
from tests.fakes.openai_server import FakeOpenAI
from tests.protocols.chatkit.helpers import ChatKit, add_req, create_req, created_thread
from tests.runs.helpers import CHATBOT, create_assistant, create_thread, run_body, wait_run


def walk(
    client: requests.Session,
    path: str,
    limit: int,
    between: Callable[[], None] = lambda: None,
    **params: Any,
) -> tuple[list[Any], list[int]]:
    """Every item of a list, following ``Link`` headers; ``between`` runs after each page.
    Returns the items and the page sizes."""
    r = client.get(path, params={"limit": limit, **params})
    items: list[Any] = []
    sizes: list[int] = []
    for _ in range(100):
        assert r.status_code == 200, r.text
        page = r.json()
        assert isinstance(page, list)
        items.extend(page)
        sizes.append(len(page))
        following = r.links.get("next")
        if following is None:
            assert "link" not in r.headers
            return items, sizes
        assert len(page) == limit
        between()
        r = client.get(following["url"])
    raise AssertionError("more than 100 pages")


def check_walk(
    client: requests.Session,
    path: str,
    key: str,
    expected: list[str],
    add: Callable[[], str] | None = None,
    *,
    added_seen: bool = False,
    **params: Any,
) -> None:
    """``expected`` (ids in the list's order) comes back exactly once each over pages of 3,
    with ``add`` creating an item after every page (seen at the end of the list when the
    list is oldest first, else not at all)."""
    whole = client.get(path, params=params)
    assert [x[key] for x in whole.json()] == expected and "link" not in whole.headers
    added: list[str] = []

    def between() -> None:
        if add is not None:
            added.append(add())

    items, sizes = walk(client, path, 3, between, **params)
    ids = [x[key] for x in items]
    assert len(ids) == len(set(ids)), ids
    assert ids == expected + (added if added_seen else [])
    assert sizes[-1] <= 3


def _names(client: requests.Session, path: str, key: str) -> list[str]:
    return [x[key] for x in client.get(path, params={"limit": 1000}).json()]


def test_assistants_pages(loom: LoomServer) -> None:
    client = loom.client("pager-a")
    for i in range(7):
        create_assistant(client, CHATBOT, name=f"a{i}")
    expected = _names(client, "/assistants", "assistant_id")
    assert len(expected) == 7
    check_walk(
        client, "/assistants", "assistant_id", expected, lambda: create_assistant(client, CHATBOT)
    )


def test_public_assistants_pages(loom: LoomServer) -> None:
    for user in ("pager-b", "pager-c"):
        client = loom.client(user)
        for i in range(4):
            r = client.post(
                "/assistants", json={"name": f"p{i}", "config": CHATBOT, "public": True}
            )
            assert r.status_code == 200, r.text
    client = loom.client("pager-b")
    expected = _names(client, "/assistants/public", "assistant_id")
    assert len(expected) >= 8

    def add() -> str:
        r = client.post("/assistants", json={"name": "new", "config": CHATBOT, "public": True})
        return str(r.json()["assistant_id"])

    check_walk(client, "/assistants/public", "assistant_id", expected, add)


def test_threads_pages_and_search_pages(loom: LoomServer) -> None:
    client = loom.client("pager-d")
    assistant_id = create_assistant(client, CHATBOT)
    for i in range(8):
        create_thread(client, assistant_id, name=f"{'blue' if i % 2 else 'red'} thread {i}")
    expected = _names(client, "/threads", "thread_id")
    assert len(expected) == 8
    check_walk(
        client, "/threads", "thread_id", expected, lambda: create_thread(client, assistant_id)
    )
    blue = [x["thread_id"] for x in client.get("/threads", params={"q": "blue"}).json()]
    assert len(blue) == 4
    check_walk(
        client,
        "/threads",
        "thread_id",
        blue,
        lambda: create_thread(client, assistant_id, name="blue too"),
        q="blue",
    )


def test_thread_runs_pages(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    client = loom.client("pager-e")
    thread_id = create_thread(client, create_assistant(client, CHATBOT))

    def add() -> str:
        r = client.post("/runs", json=run_body(thread_id, "hi"))
        assert r.status_code == 200, r.text
        wait_run(client, r.json()["run_id"])
        return str(r.json()["run_id"])

    for _ in range(5):
        add()
    path = f"/threads/{thread_id}/runs"
    expected = _names(client, path, "run_id")
    assert len(expected) == 5
    check_walk(client, path, "run_id", expected, add)
    succeeded, _ = walk(client, path, 2, status="success")
    assert [r["run_id"] for r in succeeded] == _names(client, path, "run_id")


def test_files_pages(loom: LoomServer) -> None:
    client = loom.client("pager-f")
    assistant_id = create_assistant(client, CHATBOT)
    thread_id = create_thread(client, assistant_id)
    count = [0]

    def upload(target: dict[str, str], n: int) -> list[str]:
        names = []
        files = []
        for _ in range(n):
            count[0] += 1
            names.append(f"f{count[0]:02d}.txt")
            files.append(("files", (names[-1], f"file {count[0]}".encode(), "text/plain")))
        config = json.dumps({"configurable": target})
        r = client.post("/ingest", files=files, data={"config": config})
        assert r.status_code == 200, r.text
        return names

    for path, target in (
        (f"/assistants/{assistant_id}/files", {"assistant_id": assistant_id}),
        (f"/threads/{thread_id}/files", {"thread_id": thread_id}),
    ):
        # one upload: every file has the same time, the name breaks the tie
        expected = upload(target, 7)
        assert _names(client, path, "filename") == expected
        check_walk(
            client, path, "filename", expected, lambda t=target: upload(t, 1)[0], added_seen=True
        )


def test_api_keys_pages(loom: LoomServer) -> None:
    client = loom.client("pager-g")

    def add() -> str:
        r = client.post("/api-keys", json={"name": "k"})
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    expected = [add() for _ in range(7)]
    check_walk(client, "/api-keys", "id", expected, add, added_seen=True)


def test_feedback_pages(loom: LoomServer, fake_llm: FakeOpenAI) -> None:
    user = loom.client("pager-h")
    ck = ChatKit(user)
    thread_id = created_thread(ck.stream(create_req("one")))
    for text in ("two", "three", "four"):
        ck.stream(add_req(thread_id, text))
    items = [i.id for i in ck.all_items(thread_id)]
    assert len(items) >= 8
    # one request: every verdict has the same time, the item id breaks the tie
    params = ItemFeedbackParams(thread_id=thread_id, item_ids=items[:6], kind="positive")
    assert ck.post(ItemsFeedbackReq(params=params)).status_code == 200
    path = f"/threads/{thread_id}/feedback"
    expected = sorted(items[:6])
    assert _names(user, path, "item_id") == expected
    rest = iter(items[6:])

    def add() -> str:
        item = next(rest)
        params = ItemFeedbackParams(thread_id=thread_id, item_ids=[item], kind="negative")
        assert ck.post(ItemsFeedbackReq(params=params)).status_code == 200
        return item

    check_walk(user, path, "item_id", expected, add, added_seen=True)
    assert any(isinstance(i, AssistantMessageItem) for i in ck.all_items(thread_id))


@pytest.mark.parametrize(
    "query",
    [{"cursor": "not a cursor"}, {"cursor": "WzFd"}, {"limit": 0}, {"limit": 1001}],
    ids=["garbage", "wrong shape", "limit 0", "limit over max"],
)
def test_bad_page_parameters(loom: LoomServer, query: dict[str, Any]) -> None:
    r = loom.client("pager-i").get("/threads", params=query)
    assert r.status_code == 422, r.text
    assert "detail" in r.json()


def test_default_page_is_large_and_pages_are_per_user(loom: LoomServer) -> None:
    client = loom.client("pager-j")
    assistant_id = create_assistant(client, CHATBOT)
    for _ in range(3):
        create_thread(client, assistant_id)
    r = client.get("/threads", params={"limit": 2})
    following = r.links["next"]["url"]
    # someone else's cursor pages through their own threads only
    theirs = loom.client("pager-k").get(following)
    assert (theirs.status_code, theirs.json()) == (200, [])
    whole = client.get("/threads")
    assert len(whole.json()) == 3 and "link" not in whole.headers


# --- /history ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chatted(loom: LoomServer) -> tuple[str, list[str]]:
    """A thread with three runs (three checkpoints each) and a state update."""
    client = loom.client("historian")
    thread_id = create_thread(client, create_assistant(client, CHATBOT))
    run_ids = []
    for i in range(3):
        r = client.post("/runs", json=run_body(thread_id, f"question {i}"))
        run_ids.append(r.json()["run_id"])
        assert wait_run(client, run_ids[-1])["status"] == "success"
    r = client.post(
        f"/threads/{thread_id}/state", json={"values": [{"type": "human", "content": "x"}]}
    )
    assert r.status_code == 200, r.text
    return thread_id, run_ids


def _history_pages(client: requests.Session, path: str, limit: int, **params: Any) -> list[Any]:
    out: list[Any] = []
    before = None
    for _ in range(50):
        query = {"limit": limit, **params, **({"before": before} if before else {})}
        page = client.get(path, params=query).json()
        out.extend(page)
        if len(page) < limit:
            return out
        before = page[-1]["checkpoint_id"]
    raise AssertionError("too many pages")


def test_history_without_values_is_the_same_checkpoints(
    loom: LoomServer, chatted: tuple[str, list[str]]
) -> None:
    client = loom.client("historian")
    thread_id, _ = chatted
    path = f"/threads/{thread_id}/history"
    full = _history_pages(client, path, 4)
    bare = _history_pages(client, path, 4, values="false")
    assert len(full) == 10
    # the default keeps OpenGPTs' entries: the state at each checkpoint
    assert all({"values", "next"} <= set(h) for h in full)
    assert full[0]["values"] == client.get(f"/threads/{thread_id}/state").json()["values"]
    assert [set(h) for h in bare] == [
        {"checkpoint_id", "config", "parent", "metadata", "created_at"}
    ] * len(bare)
    assert bare == [{k: v for k, v in h.items() if k not in ("values", "next")} for h in full]


def test_post_history_pages_and_filters(loom: LoomServer, chatted: tuple[str, list[str]]) -> None:
    client = loom.client("historian")
    thread_id, run_ids = chatted
    path = f"/threads/{thread_id}/history"
    every = client.get(path, params={"limit": 100, "values": "false"}).json()
    first = client.post(path, json={"limit": 3, "values": False}).json()
    assert first == every[:3]
    by_id = client.post(
        path, json={"limit": 3, "values": False, "before": first[-1]["checkpoint_id"]}
    )
    by_config = client.post(path, json={"limit": 3, "values": False, "before": first[-1]["config"]})
    assert by_id.json() == by_config.json() == every[3:6]
    of_run = client.post(path, json={"limit": 100, "metadata": {"run_id": run_ids[1]}}).json()
    assert len(of_run) == 3
    assert {h["metadata"]["run_id"] for h in of_run} == {run_ids[1]}
    assert [h["checkpoint_id"] for h in of_run] == [
        h["checkpoint_id"] for h in every if h["metadata"].get("run_id") == run_ids[1]
    ]
    assert all("values" in h for h in of_run)
    bad = client.post(path, json={"limit": 0})
    assert bad.status_code == 422
    assert (
        client.post(path, json={"before": {"configurable": {"checkpoint_id": 5}}}).status_code
        == 422
    )
    assert loom.client("someone else").post(path, json={}).status_code == 404
