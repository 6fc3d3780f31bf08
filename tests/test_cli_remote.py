"""The ``tuneserve`` commands that use a service, run by typer's CliRunner against the live
service over HTTP (through tuneserve-client), and once in a real terminal (tmux)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest
from conftest import ROOT, production_copy
from tuneserve.cli import app
from typer.testing import CliRunner

EXAMPLES = ROOT / "examples" / "data"
WIDE = {"COLUMNS": "200"}  # room for whole tables


@pytest.fixture(scope="module")
def cli(ready_service, admin_key):
    """``tuneserve --url … --key … ARGS``: its exit code and output."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None, key: str | None = admin_key):
        prefix = ["--url", ready_service] + (["--key", key] if key else [])
        return runner.invoke(app, [*prefix, *args], input=input, env=WIDE)

    return run


@pytest.fixture(scope="module")
def followed_job(cli, service_settings) -> tuple[str, object]:
    """A job created and followed to its end by ``jobs create --follow`` on a copy of
    sentiment (production v1), so its evaluation has a production to compare with."""
    model = production_copy(service_settings, "sentiment", "cli-sentiment", "classification")
    done = cli(
        "jobs", "create", "--model", model,
        "--file", str(EXAMPLES / "reviews.jsonl"),
        "--validation", str(EXAMPLES / "reviews-heldout.jsonl"),
        "--epochs", "1", "--batch-size", "8", "--seed", "1", "--follow",
    )  # fmt: skip
    return model, done


def test_tasks_print_tables_and_json(cli):
    table = cli("classify", "A wonderful film.", "A dull mess.", "--top-k", "2")
    assert table.exit_code == 0, table.output
    assert "A wonderful film." in table.output and "positive" in table.output
    answer = json.loads(cli("classify", "Fine.", "--json").output)
    assert answer["model"] == "sentiment" and len(answer["results"]) == 1
    ner = cli("ner", input="Anna flew to Paris.\nBob stayed in Rome.\n")  # stdin, a batch
    assert ner.exit_code == 0 and "Paris." in ner.output and "Rome." in ner.output
    qa = cli("qa", "Who did it?", "--context", "Anna did it.", "--json")
    assert json.loads(qa.output)["results"][0]["answer"]
    translated = cli("translate", "--file", "-", "--json", input='"The dog."\n{"text": "A cat."}\n')
    assert len(json.loads(translated.output)["results"]) == 2


def test_batches_are_split_and_bad_lines_named(cli, tmp_path):
    rows = tmp_path / "texts.jsonl"
    rows.write_text("".join(json.dumps({"text": f"Film {i}."}) + "\n" for i in range(5)))
    batched = cli("classify", "--file", str(rows), "--batch-size", "2", "--json")
    answers = [json.loads(line) for line in batched.output.splitlines()]
    assert [len(a["results"]) for a in answers] == [2, 2, 1]
    rows.write_text('{"text": "ok"}\n{oops\n')
    refused = cli("classify", "--file", str(rows))
    assert refused.exit_code == 2 and "line 2" in refused.output


def test_chat_streams_one_reply_and_answers_a_jsonl_batch(cli):
    reply = cli("chat", "Hello", "--max-tokens", "4", "--temperature", "0")
    assert reply.exit_code == 0 and reply.output.strip()
    batch = cli("chat", "--file", "-", "--json", "--max-tokens", "3", input='"Hi"\n"Bye"\n')
    completions = [json.loads(line) for line in batch.output.splitlines()]
    assert [c["object"] for c in completions] == ["chat.completion"] * 2


def test_errors_exit_with_the_services_message(cli):
    missing = cli("models", "show", "no-such-model")
    assert missing.exit_code == 2 and "404 not_found_error (model)" in missing.output
    stranger = cli("models", "list", key="ts-not-a-key")
    assert stranger.exit_code == 2 and "401" in stranger.output
    unreachable = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", "models", "list"])
    assert unreachable.exit_code == 3 and "cannot reach the service" in unreachable.output


def test_jobs_create_follows_to_the_evaluation_and_the_gate(followed_job):
    model, done = followed_job
    assert done.exit_code == 0, done.output
    output = done.output
    assert "uploaded reviews.jsonl" in output and "files validated" in output
    assert "evaluation on the held-out rows" in output and "accuracy (gate)" in output
    assert "candidate v2" in output and "production v1" in output
    assert "gate: " in output and f"fine-tuned model: {model}@2" in output


def test_jobs_list_show_events_and_cancel(cli, followed_job):
    model, _ = followed_job
    listed = json.loads(cli("jobs", "list", "--limit", "100", "--json").output)["data"]
    job = next(j for j in listed if j["model"] == model)
    shown = cli("jobs", "show", job["id"])
    assert shown.exit_code == 0 and "succeeded" in shown.output and "candidate v2" in shown.output
    events = cli("jobs", "events", job["id"], "--limit", "100")
    assert "status: succeeded" in events.output and "files validated" in events.output
    queued = json.loads(
        cli("jobs", "create", "--model", model, "--file", job["training_file"], "--json").output
    )
    cancelled = cli("jobs", "cancel", queued["id"])
    assert cancelled.exit_code == 0 and queued["id"] in cancelled.output


def test_files_and_models_commands(cli, followed_job):
    model, _ = followed_job
    uploaded = cli("files", "upload", str(EXAMPLES / "reviews-heldout.jsonl"), "--json")
    file_id = json.loads(uploaded.output)["id"]
    assert file_id in cli("files", "list").output
    assert cli("files", "delete", file_id).exit_code == 0
    assert model in cli("models", "list").output
    versions = json.loads(cli("models", "versions", model, "--json").output)["data"]
    production = next(v["version"] for v in versions if "production" in v["aliases"])
    other = 1 if production == 2 else 2
    promoted = cli("models", "promote", model, str(other), "--expected-from", str(production))
    assert promoted.exit_code == 0 and f"production {production} → {other}" in promoted.output
    rolled = cli("models", "rollback", model)
    assert rolled.exit_code == 0 and f"production {other} → {production}" in rolled.output
    shown = cli("models", "show", model)
    assert f"production→{production}" in shown.output and "ftjob-" in shown.output


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_the_progress_bar_renders_in_a_real_terminal(ready_service, admin_key, service_settings):
    """tmux runs ``jobs create --follow`` in a real pseudo-terminal; the pane shows rich's
    live bar, which ends at 100%."""
    model = production_copy(service_settings, "sentiment", "tmux-sentiment", "classification")
    session = f"tuneserve-{time.monotonic_ns()}"
    tuneserve = ROOT / ".venv" / "bin" / "tuneserve"
    command = (
        f"TUNESERVE_URL={ready_service} TUNESERVE_API_KEY={admin_key} {tuneserve} jobs create "
        f"--model {model} --file {EXAMPLES / 'reviews.jsonl'} --epochs 2 --batch-size 8 "
        "--follow; echo EXIT=$?"
    )
    tmux = ["tmux", "-L", session]  # a server of its own
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "50"], check=True)
    try:
        subprocess.run([*tmux, "send-keys", "-t", session, command, "Enter"], check=True)
        pane = ""
        deadline = time.monotonic() + 600
        while not re.search(r"^EXIT=\d+", pane, re.MULTILINE) and time.monotonic() < deadline:
            time.sleep(1)
            pane = subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", session, "-S", "-100"],
                capture_output=True,
                text=True,
            ).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    assert re.search(r"^EXIT=0$", pane, re.MULTILINE), pane
    bar = next(line for line in pane.splitlines() if line.startswith("trained "))
    assert "━" in bar and "100%" in bar and "10/10" in bar, pane
