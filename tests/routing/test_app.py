"""The routing service end to end: stub OpenAI backends on loopback, the router app, the official client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from routing_stubs import HashRate, StubBackend, ThreadServer, free_port

from depo.routing.app import create_app
from depo.routing.router import ModelSpec, Router
from depo.routing.serve_config import BackendConfig, ServeConfig

TOKEN = "s3cret"
TEXTS = [f"question {i}: what is {i} + {i * 7}?" for i in range(40)]


def make_router() -> Router:
    return Router([ModelSpec("small", 1.0), ModelSpec("large", 5.0)], {"small": HashRate()}, rule="threshold", tau=0.5)


def make_config(small_url: str, large_url: str, **kw) -> ServeConfig:
    models = [
        BackendConfig(name="small", url=small_url + "/v1", cost=1.0, backend_model="stub-small"),
        BackendConfig(name="large", url=large_url + "/v1", cost=5.0, backend_model="stub-large", api_key="backend-key"),
    ]
    kw.setdefault("bearer_token", TOKEN)
    kw.setdefault("read_timeout_s", 10.0)
    return ServeConfig(models=models, **kw)


def expected_model(text: str) -> str:
    return make_router().route([text])[0].model


@pytest.fixture(scope="module")
def stack():
    small, large = StubBackend("small"), StubBackend("large")
    with ThreadServer(small.app) as s, ThreadServer(large.app) as lg:
        app = create_app(make_config(s.url, lg.url, max_concurrency=8), make_router())
        with ThreadServer(app) as router_server:
            yield {"small": small, "large": large, "url": router_server.url, "app": app}


def client(url: str, token: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=token, max_retries=0, timeout=30)


def test_both_models_are_exercised_by_the_fixed_texts():
    chosen = {expected_model(t) for t in TEXTS}
    assert chosen == {"small", "large"}


def test_plain_request_is_routed_and_answered_with_decision_headers(stack):
    c = client(stack["url"])
    for text in TEXTS[:8]:
        raw = c.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": text}])
        completion = raw.parse()
        want = expected_model(text)
        assert raw.headers["x-depo-model"] == want
        assert raw.headers["x-depo-routed-model"] == want
        assert raw.headers["x-depo-rule"] == "threshold"
        assert "x-depo-failover" not in raw.headers
        rates = json.loads(raw.headers["x-depo-pass-rates"])
        assert rates == {"small": pytest.approx(HashRate().predict([text])[0], abs=1e-4)}
        assert completion.choices[0].message.content == f"{want}: {text}"
    # the backend saw its own model name, and only the large backend got its API key
    assert set(stack["small"].seen_models) <= {"stub-small"}
    assert set(stack["large"].seen_models) <= {"stub-large"}
    assert set(stack["large"].seen_auth) == {"Bearer backend-key"}
    assert set(stack["small"].seen_auth) == {None}


def test_routing_reads_the_last_user_message(stack):
    c = client(stack["url"])
    text = TEXTS[3]
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": TEXTS[4]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": text}]},
    ]
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=messages)
    assert raw.headers["x-depo-model"] == expected_model(text)


def test_streaming_passes_the_backend_sse_through(stack):
    c = client(stack["url"])
    for text in TEXTS[:6]:
        raw = c.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": text}], stream=True
        )
        want = expected_model(text)
        assert raw.headers["x-depo-model"] == want
        assert raw.headers["content-type"].startswith("text/event-stream")
        pieces, finish = [], None
        for chunk in raw.parse():
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        assert "".join(pieces) == f"{want}: {text}"
        assert finish == "stop"


def test_a_configured_model_name_pins_the_request(stack):
    c = client(stack["url"])
    for text in TEXTS[:5]:
        raw = c.chat.completions.with_raw_response.create(model="large", messages=[{"role": "user", "content": text}])
        assert raw.headers["x-depo-model"] == "large"
        assert raw.headers["x-depo-rule"] == "pinned"
    names = [m.id for m in client(stack["url"]).models.list()]
    assert names == ["auto", "depo-router", "small", "large"]


def test_auth_is_required_on_the_api_but_not_on_health(stack):
    with pytest.raises(openai.AuthenticationError):
        client(stack["url"], token="wrong").chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}]
        )
    r = httpx.post(stack["url"] + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(stack["url"] + "/v1/models").status_code == 401
    health = httpx.get(stack["url"] + "/health")
    assert health.status_code == 200 and health.json()["models"] == ["small", "large"]


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"model": "auto"}', 400, "messages"),
        (b'{"messages": []}', 400, "messages"),
        (b'{"messages": ["hi"]}', 400, "messages[0]"),
        (b'{"messages": [{"role": "system", "content": "x"}]}', 400, "role 'user'"),
        (b'{"messages": [{"role": "user", "content": 3}]}', 400, "no text"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "stream"),
        (b'{"messages": [{"role": "user", "content": "x"}], "model": "gpt-9"}', 404, "unknown model"),
    ],
)
def test_malformed_requests_get_a_json_error(stack, body, status, fragment):
    before = stack["small"].count + stack["large"].count
    r = httpx.post(
        stack["url"] + "/v1/chat/completions",
        content=body,
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )
    assert r.status_code == status
    assert fragment in r.json()["error"]["message"]
    assert stack["small"].count + stack["large"].count == before  # nothing was forwarded


def test_openai_client_sees_400_as_bad_request(stack):
    with pytest.raises(openai.BadRequestError):
        client(stack["url"]).chat.completions.create(model="auto", messages=[{"role": "system", "content": "x"}])


def _metric_samples(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(url + "/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_decisions_requests_and_shares(stack):
    before = _metric_samples(stack["url"])
    c = client(stack["url"])
    texts = TEXTS[10:30]
    for text in texts:
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": text}])
    after = _metric_samples(stack["url"])

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    n_small = sum(expected_model(t) == "small" for t in texts)
    assert delta("depo_route_decisions_total", model="small") == n_small
    assert delta("depo_route_decisions_total", model="large") == len(texts) - n_small
    assert delta("depo_route_requests_total", model="small", status="200") == n_small
    assert delta("depo_route_backend_requests_total", backend="large", outcome="ok") == len(texts) - n_small
    assert delta("depo_route_request_latency_seconds_count", model="small") == n_small
    total_small = after[("depo_route_decisions_total", (("model", "small"),))]
    total_large = after[("depo_route_decisions_total", (("model", "large"),))]
    share = after[("depo_route_routing_share", (("model", "small"),))]
    assert share == pytest.approx(total_small / (total_small + total_large))


async def _post_chunks(app, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, dict, int]:
    """POST `chunks` as one request body straight to the ASGI app: (status, JSON body, chunks read)."""
    read = 0

    async def receive():
        nonlocal read
        if read == len(chunks):
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    sent = []

    async def send(message):
        sent.append(message)

    path = "/v1/chat/completions"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


def test_a_body_over_max_body_bytes_is_refused_without_reading_it_all():
    app = create_app(make_config("http://127.0.0.1:1", "http://127.0.0.1:2", bearer_token=None, max_body_bytes=100), make_router())
    chunks = [b"x" * 50] * 1000
    declared = [(b"content-type", b"application/json"), (b"content-length", str(50 * 1000).encode())]
    status, body, read = asyncio.run(_post_chunks(app, chunks, declared))
    assert (status, read) == (413, 0)  # refused on its Content-Length, before any byte is read
    assert body["error"]["message"] == "request body over 100 bytes"
    status, body, read = asyncio.run(_post_chunks(app, chunks, [(b"content-type", b"application/json")]))
    assert (status, read) == (413, 3)  # no length given: read only until past the limit (150 bytes)
    assert body["error"]["message"] == "request body over 100 bytes"
    status, _, read = asyncio.run(_post_chunks(app, [b'{"messages"', b": []}"], [(b"content-type", b"application/json")]))
    assert (status, read) == (400, 2)  # a body within the limit is read whole, in its chunks


class FailingPredictor:
    def predict(self, texts):
        raise RuntimeError("estimator exploded")


def test_every_chat_answer_is_counted_by_status():
    small, large = StubBackend("small"), StubBackend("large")
    router = Router([ModelSpec("small", 1.0), ModelSpec("large", 5.0)], {"small": FailingPredictor()}, rule="threshold", tau=0.5)
    with (ThreadServer(small.app) as s, ThreadServer(large.app) as lg,
          ThreadServer(create_app(make_config(s.url, lg.url, max_body_bytes=200, max_concurrency=1, queue_timeout_s=0.0), router)) as srv):
        url, auth = srv.url + "/v1/chat/completions", {"authorization": f"Bearer {TOKEN}"}
        hi = [{"role": "user", "content": "hi"}]
        statuses = [
            httpx.post(url, json={"messages": hi}).status_code,  # no token: 401
            httpx.post(url, content=b"{nope", headers=auth).status_code,  # 400
            httpx.post(url, json={"model": "gpt-9", "messages": hi}, headers=auth).status_code,  # 404
            httpx.post(url, json={"messages": [{"role": "user", "content": "x" * 300}]}, headers=auth).status_code,  # 413
            httpx.post(url, json={"messages": hi}, headers=auth).status_code,  # the predictor fails: 500
            httpx.post(url, json={"model": "large", "messages": hi}, headers=auth).status_code,  # pinned: 200
        ]
        large.delay_s = 0.5  # two at once with one slot: one gets 503

        async def two():
            async with httpx.AsyncClient(timeout=30) as http:
                body = {"model": "large", "messages": hi}
                return await asyncio.gather(*(http.post(url, json=body, headers=auth) for _ in range(2)))

        statuses += sorted(r.status_code for r in asyncio.run(two()))
        assert statuses == [401, 400, 404, 413, 500, 200, 200, 503]
        samples = _metric_samples(srv.url)
    counted = {dict(k[1])["status"]: (dict(k[1])["model"], v) for k, v in samples.items() if k[0] == "depo_route_requests_total"}
    assert counted == {"401": ("none", 1), "400": ("none", 1), "404": ("none", 1), "413": ("none", 1),
                       "500": ("none", 1), "503": ("none", 1), "200": ("large", 2)}  # fmt: skip
    assert ("depo_route_request_latency_seconds_count", (("model", "none"),)) not in samples  # latency: only when a model served


def test_failover_when_the_chosen_backend_is_down():
    large = StubBackend("large")
    dead = f"http://127.0.0.1:{free_port()}"
    with ThreadServer(large.app) as lg:
        app = create_app(make_config(dead, lg.url, bearer_token=None, connect_timeout_s=2), make_router())
        with ThreadServer(app) as srv:
            c = client(srv.url)
            to_small = [t for t in TEXTS if expected_model(t) == "small"][:3]
            for text in to_small:
                raw = c.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": text}])
                assert raw.headers["x-depo-routed-model"] == "small"
                assert raw.headers["x-depo-model"] == "large"
                assert raw.headers["x-depo-failover"].startswith("small: unreachable")
                assert raw.parse().choices[0].message.content == f"large: {text}"
            raw = c.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": to_small[0]}], stream=True
            )
            assert raw.headers["x-depo-model"] == "large"
            assert "".join(ch.choices[0].delta.content or "" for ch in raw.parse()) == f"large: {to_small[0]}"
            samples = _metric_samples(srv.url)
            assert samples[("depo_route_failovers_total", ())] == 4
            assert samples[("depo_route_backend_requests_total", (("backend", "small"), ("outcome", "unreachable")))] == 4


def test_failover_on_5xx_and_502_when_every_backend_fails():
    small, large = StubBackend("small"), StubBackend("large")
    small.fail_status = 503
    with ThreadServer(small.app) as s, ThreadServer(large.app) as lg:
        app = create_app(make_config(s.url, lg.url, bearer_token=None), make_router())
        with ThreadServer(app) as srv:
            text = next(t for t in TEXTS if expected_model(t) == "small")
            r = httpx.post(srv.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": text}]})
            assert r.status_code == 200 and r.headers["x-depo-model"] == "large"
            assert r.headers["x-depo-failover"] == "small: HTTP 503"
            large.fail_status = 500
            r = httpx.post(srv.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": text}]})
            assert r.status_code == 502
            assert r.json()["error"]["code"] == "backend_unavailable"
            assert "small: HTTP 503" in r.json()["error"]["message"] and "large: HTTP 500" in r.json()["error"]["message"]
            # a 4xx from the backend is the client's problem: relayed, no failover
            large.fail_status = None
            small.fail_status = 422
            r = httpx.post(srv.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": text}]})
            assert r.status_code == 422 and r.headers["x-depo-model"] == "small"
            assert "x-depo-failover" not in r.headers


def test_a_backend_dying_mid_stream_ends_the_stream_with_an_error_event_and_frees_its_slot():
    small, large = StubBackend("small"), StubBackend("large")
    small.break_stream_after = large.break_stream_after = 2
    with ThreadServer(small.app) as s, ThreadServer(large.app) as lg:
        cfg = make_config(s.url, lg.url, bearer_token=None, max_concurrency=1, queue_timeout_s=0.0)
        with ThreadServer(create_app(cfg, make_router())) as srv:
            text = TEXTS[0]
            body = {"messages": [{"role": "user", "content": text}], "stream": True}
            r = httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=30)
            events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
            served = r.headers["x-depo-model"]
            assert "".join(e["choices"][0]["delta"]["content"] for e in events[:-1]) == " ".join(f"{served}: {text}".split()[:2])
            assert events[-1] == {"error": {"message": "backend stream broke", "type": "backend_error"}}
            samples = _metric_samples(srv.url)
            assert samples[("depo_route_requests_total", (("model", served), ("status", "stream_error")))] == 1
            small.break_stream_after = large.break_stream_after = None
            r = httpx.post(srv.url + "/v1/chat/completions", json={"messages": body["messages"]}, timeout=30)
            assert r.status_code == 200  # the one slot was given back


def test_a_predictor_that_fails_is_a_500_naming_the_routing_error():
    small, large = StubBackend("small"), StubBackend("large")
    router = Router([ModelSpec("small", 1.0), ModelSpec("large", 5.0)], {"small": FailingPredictor()}, rule="threshold", tau=0.5)
    with (ThreadServer(small.app) as s, ThreadServer(large.app) as lg,
          ThreadServer(create_app(make_config(s.url, lg.url, bearer_token=None), router)) as srv):
        r = httpx.post(srv.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 500 and r.json()["error"]["code"] == "routing_error"
        assert r.json()["error"]["message"] == "routing failed: RuntimeError"
        pinned = httpx.post(srv.url + "/v1/chat/completions",
                            json={"model": "large", "messages": [{"role": "user", "content": "hi"}]})
        assert pinned.status_code == 200 and small.count + large.count == 1  # a pinned model needs no prediction


def test_concurrency_limit_rejects_when_the_queue_wait_runs_out():
    small, large = StubBackend("small", delay_s=0.5), StubBackend("large", delay_s=0.5)
    with ThreadServer(small.app) as s, ThreadServer(large.app) as lg:
        cfg = make_config(s.url, lg.url, bearer_token=None, max_concurrency=1, queue_timeout_s=0.0)
        with ThreadServer(create_app(cfg, make_router())) as srv:

            async def two():
                async with httpx.AsyncClient(timeout=30) as http:
                    body = {"messages": [{"role": "user", "content": "hello"}]}
                    return await asyncio.gather(*(http.post(srv.url + "/v1/chat/completions", json=body) for _ in range(2)))

            codes = sorted(r.status_code for r in asyncio.run(two()))
            assert codes == [200, 503]
            assert small.count + large.count == 1


def test_load_few_hundred_concurrent_requests_nothing_lost_shares_as_predicted():
    n, limit = 300, 16
    small, large = StubBackend("small", delay_s=0.005), StubBackend("large", delay_s=0.005)
    texts = [f"load query {i} about {i % 17} apples" for i in range(n)]
    want = [d.model for d in make_router().route(texts)]
    with ThreadServer(small.app) as s, ThreadServer(large.app) as lg:
        cfg = make_config(s.url, lg.url, max_concurrency=limit, queue_timeout_s=120.0)
        with ThreadServer(create_app(cfg, make_router())) as srv:

            async def drive():
                aclient = openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key=TOKEN, max_retries=0, timeout=120)

                async def one(i: int):
                    stream = i % 3 == 0
                    raw = await aclient.chat.completions.with_raw_response.create(
                        model="auto", messages=[{"role": "user", "content": texts[i]}], stream=stream
                    )
                    if stream:
                        content = "".join([c.choices[0].delta.content or "" async for c in raw.parse()])
                    else:
                        content = raw.parse().choices[0].message.content
                    return raw.headers["x-depo-model"], content

                try:
                    return await asyncio.gather(*(one(i) for i in range(n)))
                finally:
                    await aclient.close()

            results = asyncio.run(drive())
    assert [m for m, _ in results] == want
    assert [c for _, c in results] == [f"{m}: {t}" for m, t in zip(want, texts)]
    assert small.count == want.count("small") and large.count == want.count("large")
    assert 0.3 < want.count("small") / n < 0.7  # the hash predictor with tau=0.5 splits about evenly
    assert max(small.max_in_flight, large.max_in_flight) <= limit


def test_cli_serves_from_a_yaml_config_and_writes_json_access_logs(tmp_path: Path):
    small, large = StubBackend("small"), StubBackend("large")
    with ThreadServer(small.app) as s, ThreadServer(large.app) as lg:
        port = free_port()
        cfg = tmp_path / "route.yaml"
        cfg.write_text(
            f"""
port: {port}
rule: gain
lambda: 0.1
models:
  - {{name: small, url: "{s.url}/v1", cost: 1, predictor: "routing_stubs:small_predictor"}}
  - {{name: large, url: "{lg.url}/v1", cost: 5, rate: 0.8}}
"""
        )
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "depo.cli", "route", "serve", "--config", str(cfg)]
        check = subprocess.run([*cmd, "--check"], env=env, capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, check.stderr
        assert "rule=gain lambda=0.1" in check.stdout and "small  cost=1" in check.stdout
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + 120
            while True:
                try:
                    if httpx.get(url + "/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.time() < deadline, "service did not start"
                time.sleep(0.2)
            c = client(url, token="unused")
            # gain rule: large iff 0.8 - 0.1*5 > p_small - 0.1*1, i.e. p_small < 0.4
            for text in TEXTS[:6]:
                raw = c.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": text}])
                p_small = HashRate().predict([text])[0]
                assert raw.headers["x-depo-model"] == ("large" if p_small < 0.4 else "small")
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert len(logs) == 6
    assert {e["status"] for e in logs} == {200}
    assert all({"ts", "request_id", "model", "routed_model", "rates", "latency_ms"} <= set(e) for e in logs)


def test_cli_rejects_a_bad_config_in_one_line(tmp_path: Path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("models:\n  - {name: a, url: http://x/v1, cost: 1}\n  - {name: b, url: ftp://y, cost: 2}\n")
    r = subprocess.run(
        [sys.executable, "-m", "depo.cli", "route", "serve", "--config", str(cfg), "--check"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "http://" in r.stderr


def test_a_backend_that_times_out_is_failed_over():
    slow, large = StubBackend("small", delay_s=3.0), StubBackend("large")
    with ThreadServer(slow.app) as s, ThreadServer(large.app) as lg:
        app = create_app(make_config(s.url, lg.url, bearer_token=None, read_timeout_s=0.3), make_router())
        with ThreadServer(app) as srv:
            text = next(t for t in TEXTS if expected_model(t) == "small")
            r = httpx.post(srv.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": text}]}, timeout=30)
            assert r.status_code == 200
            assert r.headers["x-depo-model"] == "large" and r.headers["x-depo-failover"] == "small: timeout"
            assert r.json()["choices"][0]["message"]["content"] == f"large: {text}"
