"""Distributed training on CPU: 2 gloo ranks through torch's elastic launcher, as one job.

Real ranks on the tiny model: the loss curve and the adapter of 2 ranks x batch 4 equal one process x batch 8 (the
same global batch, the same samples per step); a rank killed with kill -9 fails the job naming that rank, and
`--resume` finishes it; `jobs stop` stops every rank at one checkpoint; the offline guard lets ranks reach the
rendezvous and the configured site addresses, nothing else.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml

from conftest import airlock_argv, wait_for
from test_jobs_lifecycle import reap_jobs
from test_train_run import job_dir_from
from tiny_model import REPO_ID

STEPS = 12


@pytest.fixture(autouse=True)
def _reap():
    yield
    reap_jobs()


def _data(tmp_path):
    """16 distinct samples: two global batches of 8 per epoch, so no rank is ever handed a padded-out batch."""
    path = tmp_path / "sums.jsonl"
    rows = [{"conversations": [{"from": "human", "value": f"What is {i} plus {i}?"},
                               {"from": "gpt", "value": f"It is {2 * i}."}]} for i in range(16)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path, name, **settings):
    cfg = {"model": REPO_ID, "method": "lora", "learning_rate": 5e-3, "lora_rank": 8, "lora_alpha": 16,
           "lora_dropout": 0.0, "lora_target": ["all-linear"], "max_steps": STEPS, "logging_steps": 1,
           "save_steps": 6, "save_total_limit": 3, "seed": 0, "per_device_train_batch_size": 8,
           "data": {"path": str(_data(tmp_path)), "cutoff_len": 64}, **settings}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _losses(job):
    return [(m["step"], m["loss"]) for m in map(json.loads, (job / "metrics.jsonl").read_text().splitlines())
            if m.get("loss") is not None]


def _adapter(job):
    from safetensors.torch import load_file

    return load_file(job / "adapter" / "adapter_model.safetensors")


def _two_ranks(**extra):
    return {"per_device_train_batch_size": 4, "distributed": {"nproc_per_node": 2, **extra}}


def test_distributed_ddp_two_ranks_equal_one_process(tmp_path, tiny_model, airlock_home, run_offline):
    one = run_offline(airlock_argv("train", _config(tmp_path, "one"), "--name", "one-process"))
    two = run_offline(_loopback_up(airlock_argv("train", _config(tmp_path, "two", **_two_ranks()), "--name",
                                                "two-ranks")))
    job1, job2 = job_dir_from(one.stdout, airlock_home), job_dir_from(two.stdout, airlock_home)
    status = json.loads((job2 / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == STEPS, two.stdout + two.stderr

    # Seeded runs are bit-identical in one process; 2 ranks differ only by the order of float sums (measured
    # ~1e-7). A run with a different global batch differs by ~1e-2 on the adapter: the bounds sit between.
    curve1, curve2 = _losses(job1), _losses(job2)
    assert [s for s, _ in curve2] == list(range(1, STEPS + 1)) == [s for s, _ in curve1]
    for (step, a), (_, b) in zip(curve1, curve2):
        assert b == pytest.approx(a, rel=1e-4), f"loss at step {step}: one process {a}, two ranks {b}"
    w1, w2 = _adapter(job1), _adapter(job2)
    assert w1.keys() == w2.keys()
    diff = sum(((w1[k] - w2[k]).double() ** 2).sum() for k in w1) ** 0.5
    norm = sum((w1[k].double() ** 2).sum() for k in w1) ** 0.5
    assert norm > 0 and diff / norm < 1e-4, f"adapters differ by {float(diff / norm):.2e} of their norm"

    # One job: one adapter, one set of checkpoints (each with both ranks' RNG state), a log per rank.
    assert sorted(p.name for p in (job2 / "checkpoints").iterdir()) == ["checkpoint-12", "checkpoint-6"]
    assert {p.name for p in (job2 / "checkpoints" / "checkpoint-12").glob("rng_state_*.pth")} == {
        "rng_state_0.pth", "rng_state_1.pth"}
    assert (job2 / "ranks" / "rank-1.log").is_file() and "rank 1/2" in (job2 / "ranks" / "rank-1.log").read_text()
    assert "rank 0/2" in (job2 / "log.txt").read_text()
    assert not list(job2.glob(".*staging*")) and not list((job2 / "checkpoints").glob(".*"))


def _loopback_up(argv):
    """`unshare -n` starts with the loopback interface down; ranks meet on 127.0.0.1, so bring it up first."""
    if not subprocess.run(["sh", "-c", "command -v ip"], capture_output=True).returncode == 0:
        pytest.skip("the ip tool (iproute2) is needed to bring up loopback inside unshare -n")
    quoted = " ".join(f"'{a}'" for a in map(str, argv))
    return ["sh", "-c", f"ip link set lo up && exec {quoted}"]


def _start_detached(tmp_path, airlock_home, name):
    config = _config(tmp_path, name, **_two_ranks(), **{"max_steps": 40, "save_steps": 10, "logging_steps": 10})
    proc = subprocess.run(airlock_argv("train", config, "--detach", "--name", name), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return job_dir_from(proc.stdout, airlock_home)


def _rank_pids(job):
    """{rank: pid} of the job's live ranks, found under the runner (the elastic agent)."""
    import psutil

    runner = psutil.Process(json.loads((job / "status.json").read_text())["pid"])
    found = {}
    for proc in runner.children(recursive=True):
        try:
            if "appliance.train.worker" in proc.cmdline():
                found[int(proc.environ()["RANK"])] = proc.pid
        except psutil.Error:
            continue
    return found


def _status(job):
    from appliance.jobs import Job

    return Job(job).status()


def _alive(pids):
    from appliance.jobs import pid_alive

    return [p for p in pids.values() if pid_alive(p)]


def _checkpoint_steps(job):
    return sorted(int(p.name.split("-")[1]) for p in (job / "checkpoints").glob("checkpoint-*"))


def test_distributed_stop_then_kill_9_of_a_rank_then_resume_completes(tmp_path, tiny_model, airlock_home):
    job = _start_detached(tmp_path, airlock_home, "ranks-life")
    wait_for(lambda: len(_rank_pids(job)) == 2 and _status(job)["step"] >= 3, "two ranks training", timeout=300)

    # `jobs stop`: every rank saves the same step's checkpoint, then all of them exit.
    pids = _rank_pids(job)
    proc = subprocess.run(airlock_argv("jobs", "stop", job.name), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = _status(job)
    assert st["state"] == "stopped", st
    assert not _alive(pids)
    stopped_at = int(st["message"].split("stopped at step ")[1].split()[0])
    assert stopped_at in _checkpoint_steps(job)
    assert (job / "checkpoints" / f"checkpoint-{stopped_at}" / "rng_state_1.pth").is_file()

    # Resumed, then rank 1 killed with kill -9: the job fails, naming the rank, and no rank is left behind.
    proc = subprocess.run(airlock_argv("train", "--resume", job.name, "--detach"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_for(lambda: _status(job)["step"] > stopped_at and len(_rank_pids(job)) == 2, "the resumed ranks",
             timeout=300)
    pids = _rank_pids(job)
    os.kill(pids[1], signal.SIGKILL)
    wait_for(lambda: _status(job)["state"] == "failed", "the job to fail", timeout=120)
    message = _status(job)["message"]
    assert f"rank 1 (pid {pids[1]})" in message and "SIGKILL" in message, message
    assert f"airlock train --resume {job.name}" in message
    wait_for(lambda: not _alive(pids), "every rank to exit", timeout=60)

    # Resumed again: all ranks continue from the last whole checkpoint and finish.
    proc = subprocess.run(airlock_argv("train", "--resume", job.name), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = _status(job)
    assert st["state"] == "completed" and st["step"] == 40
    steps = [json.loads(l)["step"] for l in (job / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 10, 20, 30, 40], "metrics continue from the checkpoints without gaps or repeats"
    assert (job / "adapter" / "adapter_model.safetensors").is_file()


GUARD_PROBE = textwrap.dedent("""
    import os, socket, sys
    from appliance.errors import OfflineViolation
    from appliance.offline import allow_addresses, enforce_offline
    enforce_offline()
    allow_addresses(["10.9.8.7", "10.20.0.0/16"])
    results = []
    for host in ("127.0.0.1", "10.9.8.7", "10.20.3.4", "10.9.8.8", "192.0.2.1"):
        sock = socket.socket()
        sock.settimeout(0.5)
        try:
            sock.connect((host, 9))
            results.append(f"{host} connected")
        except OfflineViolation:
            results.append(f"{host} refused by the guard")
        except OSError:
            results.append(f"{host} let through")  # no route or nothing listening: the network said no, not us
        finally:
            sock.close()
    print("\\n".join(results))
""")


def test_distributed_offline_guard_allows_the_rendezvous_and_site_addresses_only(run_offline):
    # The refusals are the point here, so the harness's log of attempts (which fails a test) is switched off.
    proc = run_offline([sys.executable, "-c", GUARD_PROBE], env={"AIRLOCK_NET_GUARD_LOG": ""})
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("127.0.0.1 ") and "refused" not in lines[0]
    assert lines[1] == "10.9.8.7 let through" and lines[2] == "10.20.3.4 let through"
    assert lines[3] == "10.9.8.8 refused by the guard" and lines[4] == "192.0.2.1 refused by the guard"


@pytest.mark.parametrize("overrides, where, words", [
    (["distributed.nproc_per_nod=2"], "distributed", "did you mean 'nproc_per_node'"),
    (["distributed.node_rank=2", "distributed.nnodes=2", "distributed.master_addr=10.0.0.1"],
     "distributed.node_rank", "outside 0..1"),
    (["distributed.nnodes=2"], "distributed.master_addr", "cannot be reached from the other hosts"),
    (["distributed.fsdp.sharding=shard_grad_op"], "distributed.fsdp", "strategy is ddp"),
    (["distributed.deepspeed=zero3"], "distributed.deepspeed", "strategy is ddp"),
    (["distributed.strategy=deepspeed", "distributed.deepspeed=zero4"], "distributed.deepspeed",
     "neither a preset nor a JSON file"),
    (["distributed.allow=not an address"], "distributed.allow", "not an address"),
    (["distributed.timeout_s=1"], "distributed.timeout_s", "too short"),
])
def test_distributed_config_keys_are_checked_by_name(tmp_path, overrides, where, words):
    from appliance.errors import AirlockError
    from appliance.train import load_config

    with pytest.raises(AirlockError) as caught:
        load_config(_config(tmp_path, "cfg"), overrides)
    text = caught.value.render()
    assert where in text and words in text, text


def test_distributed_flags_set_the_config_and_the_ranks_memory_share(tmp_path):
    from appliance.commands.train import DISTRIBUTED_FLAGS
    from appliance.train import load_config
    from appliance.train.memory import _sharding

    cfg = load_config(_config(tmp_path, "cfg"), [
        "distributed.nproc_per_node=8", "distributed.nnodes=2", "distributed.node_rank=1",
        "distributed.master_addr=10.0.0.1", "distributed.strategy=fsdp", "distributed.allow=10.0.0.0/24"])
    d = cfg.distributed
    assert (d.world_size, d.port(), d.allow) == (16, 29500, ["10.0.0.0/24"])
    assert {flag for flag, *_ in DISTRIBUTED_FLAGS} >= {"--node-rank", "--master-addr", "--nproc-per-node"}
    # each rank's share of (weights, gradients, optimizer moments): DDP keeps all of it, ZeRO-2-like sharding
    # splits gradients and moments, ZeRO-3-like (full_shard) the weights too (the memory planner's rule)
    assert _sharding(cfg, 16) == pytest.approx((1 / 16, 1 / 16, 1 / 16))
    d.fsdp.sharding = "shard_grad_op"
    assert _sharding(cfg, 16) == pytest.approx((1.0, 1 / 16, 1 / 16))
    d.strategy, d.fsdp.sharding = "ddp", "full_shard"
    assert _sharding(cfg, 16) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_distributed_strategies_that_need_gpus_are_refused_on_cpu_before_a_job(tmp_path, tiny_model, airlock_home,
                                                                                 strategy):
    before = set((airlock_home / "jobs").glob("*")) if (airlock_home / "jobs").is_dir() else set()
    proc = subprocess.run(airlock_argv("train", _config(tmp_path, strategy), "--nproc-per-node", "2", "--set",
                                       f"distributed.strategy={strategy}"), capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "distributed.strategy" in proc.stderr
    assert {"fsdp": "would run the ranks as DDP", "deepspeed": "deepspeed"}[strategy] in proc.stderr
    after = set((airlock_home / "jobs").glob("*")) if (airlock_home / "jobs").is_dir() else set()
    assert after == before, "no job is created for a config the host cannot run"


def test_distributed_llamafactory_deepspeed_and_fsdp_keys_translate(tmp_path, monkeypatch):
    from appliance.llamafactory import translate

    monkeypatch.chdir(tmp_path)  # LLaMA-Factory resolves its paths against the current directory
    base = {"model_name_or_path": REPO_ID, "stage": "sft", "finetuning_type": "lora", "dataset": "identity",
            "ddp_timeout": 900}
    cases = {
        "ds_missing.yaml": ({"deepspeed": "examples/deepspeed/ds_z3_config.json"},
                            {"strategy": "deepspeed", "deepspeed": "zero3", "timeout_s": 900}),
        "ds_zero0.yaml": ({"deepspeed": "examples/deepspeed/ds_z0_config.json"}, {"strategy": "ddp"}),
        "fsdp.yaml": ({"fsdp": "shard_grad_op auto_wrap offload",
                       "fsdp_config": {"transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]}},
                      {"strategy": "fsdp", "fsdp": {"sharding": "shard_grad_op", "offload_params": True,
                                                    "wrap": ["LlamaDecoderLayer"]}}),
    }
    own = tmp_path / "examples" / "deepspeed" / "ds_z2_offload_config.json"
    own.parent.mkdir(parents=True)
    own.write_text('{"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}')
    cases["ds_file.yaml"] = ({"deepspeed": "examples/deepspeed/ds_z2_offload_config.json"},
                             {"strategy": "deepspeed", "deepspeed": str(own.resolve())})
    for name, (keys, expected) in cases.items():
        path = tmp_path / name
        path.write_text(yaml.safe_dump({**base, **keys}))
        got = translate(path).config["distributed"]
        for key, value in expected.items():
            assert got.get(key) == value or (isinstance(value, dict) and
                                             {k: got[key].get(k) for k in value} == value), (name, got)

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**base, "fsdp": "hybrid_shard auto_wrap"}))
    from appliance.errors import AirlockError

    with pytest.raises(AirlockError, match="hybrid_shard"):
        translate(bad)
