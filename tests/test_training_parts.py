"""The trainer's parts in isolation: config loading, data items, EMA, LR schedule, optimizer state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from audiodiff.config import ConfigError
from audiodiff.training.checkpoint import flatten_optimizer_state, unflatten_optimizer_state
from audiodiff.training.config import (
    DiffusionTaskConfig,
    TrainConfig,
    WaveformTaskConfig,
    config_diff,
    load_train_config,
)
from audiodiff.training.data import ClipDataset, PositionSampler, collate, load_entries
from audiodiff.training.distributed import DistEnv
from audiodiff.training.ema import EMA, ema_decay
from audiodiff.training.tasks import build_task
from audiodiff.training.testing import make_captioned_folder, tiny_train_config
from audiodiff.training.trainer import BudgetHorizon, LRSchedule, lr_at

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.*"))


# -- config ---------------------------------------------------------------------------------

def test_defaults_and_overrides(tmp_path):
    config = load_train_config(None, ["optim.lr=3e-4", "task.cfg_dropout=0.2", "run_dir=runs/x",
                                      "task.unet.num_res_blocks=1", "progress=false"])
    assert isinstance(config, TrainConfig) and isinstance(config.task, DiffusionTaskConfig)
    assert config.optim.lr == 3e-4 and config.task.cfg_dropout == 0.2 and config.run_dir == "runs/x"
    assert config.task.unet.num_res_blocks == 1 and config.progress is False
    # JSON round trip through the file format.
    path = tmp_path / "c.json"
    path.write_text(config.to_json())
    assert load_train_config(path) == config


def test_toml_and_task_type_alias(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('steps = 7\nbatch_size = 4\n[task]\ntype = "waveform"\n[task.text]\nencoder = "hash"\n'
                    'dim = 32\n[task.unet]\ntext_dim = 32\npooled_dim = 32\n')
    config = load_train_config(path)
    assert isinstance(config.task, WaveformTaskConfig) and config.steps == 7
    assert config.task.text.encoder == "hash"


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown config key(s) config.optim.lrr"),
    ("bogus=1", "unknown config key(s) config.bogus"),
    ("task.unet.base_chanels=8", "config.task.unet.base_chanels"),
    ("steps=1.5", "config.steps: expected int, got float"),
    ("steps=true", "config.steps: expected int, got bool"),
    ("optim.lr=fast", "config.optim.lr: expected float, got str"),
    ("progress=1", "config.progress: expected bool"),
    ("optim.betas=[0.9]", "config.optim.betas: expected a list of 2 values"),
    ("task.unet.channel_mults=[1,\"a\"]", "config.task.unet.channel_mults[1]: expected int"),
    ("optim=3", "config.optim: expected a section"),
    ("task.type=gan", "unknown config type 'gan'"),
    ("optim.lr=-1", "optim.lr must be a positive number"),
    ("precision=fp8", "precision must be one of"),
    ("nokey", "--set expects key=value"),
])
def test_bad_config_values_are_named(override, message):
    with pytest.raises(ConfigError) as info:
        load_train_config(None, [override])
    assert message in str(info.value)


def test_bad_config_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_train_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{steps: 3")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_train_config(tmp_path / "bad.json")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_configs_load(path):
    config = load_train_config(path)
    assert config.run_dir and (config.data.folder or config.data.manifest or config.data.features)


def test_config_diff_names_dotted_keys():
    a = load_train_config(None, ["task.unet.base_channels=16"])
    b = load_train_config(None)
    assert config_diff(a.task, b.task, "task") == ["task.unet.base_channels: 16 != 32"]


# -- data -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_captioned_folder(tmp_path_factory.mktemp("clips"), clips_per_class=4)


def _dataset(folder, tmp_path, train=True, **data):
    config = tiny_train_config(tmp_path / "run", folder, [f"data.{k}={json.dumps(v)}" for k, v in data.items()])
    task = build_task(config.task)
    entries = [e for e in load_entries(config.data) if e.split == ("train" if train else "valid")]
    spec = task.feature_spec(config.data)
    return ClipDataset(entries, spec, config.seed, task.text_config, train=train,
                       cache_dir=config.data.cache_dir, memory_clips=config.data.memory_cache_clips,
                       mask_padding=config.data.mask_padding), spec


def test_items_depend_only_on_position(folder, tmp_path):
    a, spec = _dataset(folder, tmp_path)
    b, _ = _dataset(folder, tmp_path, memory_cache_clips=0)
    for p in (0, 5, 3, 17, 0):
        x, y = a[p], b[p]
        assert torch.equal(x["x"], y["x"]) and x["caption"] == y["caption"] and torch.equal(x["mask"], y["mask"])
    assert a[0]["x"].shape == (1, 16, spec.crop) and a[0]["tokens"].shape[1] == 32
    # Every clip is seen once per epoch, in a different order each epoch.
    n = len(a)
    epoch0 = [a.clip_index(p) for p in range(n)]
    epoch1 = [a.clip_index(p) for p in range(n, 2 * n)]
    assert sorted(epoch0) == sorted(epoch1) == list(range(n)) and epoch0 != epoch1
    # Different positions of the same clip get different crops or captions.
    same_clip = [p for p in range(8 * n) if a.clip_index(p) == 0][:6]
    assert len({(float(a[p]["x"].sum()), a[p]["caption"]) for p in same_clip}) > 1


def test_short_clips_are_padded_and_masked(folder, tmp_path):
    data, spec = _dataset(folder, tmp_path, crop_s=2.0)  # longer than every clip (<= 0.9 s)
    item = data[0]
    real = int(item["mask"].sum())
    assert 0 < real < spec.crop
    assert torch.all(item["x"][..., real:] == -1.0)  # silence in the normalised mel
    assert item["sound_frames"] == real  # the timing input's length: the clip, not its padding
    batch = collate([data[0], data[1]])
    assert batch["x"].shape == (2, 1, 16, spec.crop) and batch["token_mask"].dtype == torch.bool
    assert batch["sound_frames"].tolist() == [real, data[1]["mask"].sum().item()]
    # A crop inside a longer clip is sound throughout.
    cropped, short_spec = _dataset(folder, tmp_path, crop_s=0.1)
    assert [cropped[p]["sound_frames"] for p in range(4)] == [short_spec.crop] * 4
    # mask_padding=false: the same item, with its silence a training target.
    learned, _ = _dataset(folder, tmp_path, crop_s=2.0, mask_padding=False)
    assert torch.equal(learned[0]["x"], item["x"]) and torch.all(learned[0]["mask"] == 1.0)


def test_disk_cache_gives_the_same_items(folder, tmp_path):
    plain, _ = _dataset(folder, tmp_path)
    cached, _ = _dataset(folder, tmp_path, cache_dir=str(tmp_path / "cache"), memory_cache_clips=0)
    first = [cached[p]["x"] for p in range(6)]
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) > 0
    again = [cached[p]["x"] for p in range(6)]  # now read from disk
    for p in range(6):
        assert torch.equal(first[p], plain[p]["x"]) and torch.equal(again[p], first[p])


def test_sharding_covers_the_global_batch_once():
    def positions(world, accum, micro, steps):
        out = []
        for rank in range(world):
            sampler = iter(PositionSampler(100, micro, accum, DistEnv(rank=rank, world_size=world)))
            out += [p for _ in range(steps * accum) for p in next(sampler)]
        return sorted(out)

    single = positions(1, 1, 8, 3)
    assert single == list(range(100, 124))
    assert positions(2, 1, 4, 3) == single and positions(2, 2, 2, 3) == single and positions(1, 4, 2, 3) == single


# -- EMA, LR, optimizer state -----------------------------------------------------------------

def test_ema_warmup_and_update():
    assert ema_decay(0, 0.999, 1.0) == 0.0
    assert ema_decay(1, 0.999, 1.0) == pytest.approx(0.5)     # 1 - 1/(step+1)
    assert ema_decay(9, 0.999, 1.0) == pytest.approx(0.9)
    assert ema_decay(10**7, 0.999, 0.75) == 0.999              # capped
    lin = torch.nn.Linear(2, 2)
    ema = EMA({"m": lin}, max_decay=0.5, power=1.0)
    start = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update(1)  # decay 0.5: halfway
    assert torch.allclose(ema.shadow["m.weight"], start + 0.5)
    with ema.swapped_in():
        assert torch.allclose(lin.weight, start + 0.5)
    assert torch.allclose(lin.weight, start + 1.0)
    other = EMA({"m": torch.nn.Linear(2, 2)})
    other.load_state_dict(ema.state_dict())
    assert torch.equal(other.shadow["m.weight"], ema.shadow["m.weight"])
    with pytest.raises(ValueError, match="does not match"):
        EMA({"n": lin}).load_state_dict(ema.state_dict())


def test_lr_schedule():
    lrs = [lr_at(s, 1.0, 4, 20, "cosine", 0.1) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:])) and lrs[-1] == pytest.approx(0.1, abs=0.02)
    assert lr_at(50, 1.0, 4, 20, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_at(10, 2.0, 0, 20, "constant", 0.1) == 2.0


def test_lr_schedule_with_a_moving_end_stays_continuous_and_never_rises():
    fixed = LRSchedule(1.0, 4, 20, "cosine", 0.1)
    assert [fixed(s) for s in range(30)] == [lr_at(s, 1.0, 4, 20, "cosine", 0.1) for s in range(30)]
    moving = LRSchedule(1.0, 4, 20, "cosine", 0.1)
    lrs = [moving(s) for s in range(10)]
    moving.set_horizon(10, 60)  # the budget turns out to hold three times the steps
    lrs += [moving(s) for s in range(10, 40)]
    moving.set_horizon(40, 50)  # ... then fewer
    lrs += [moving(s) for s in range(40, 60)]
    steps = [b - a for a, b in zip(lrs[3:], lrs[4:])]
    assert all(d <= 1e-12 for d in steps)  # never rises after the warm-up
    assert max(-d for d in steps) < 0.1  # no jump: the fixed schedule's largest step is 0.12
    assert lrs[9] == pytest.approx(lr_at(9, 1.0, 4, 20, "cosine", 0.1))  # the same until moved
    assert lrs[20] > lr_at(20, 1.0, 4, 20, "cosine", 0.1) + 0.3  # decays more slowly after
    assert lrs[50] == pytest.approx(0.1) and lrs[49] > 0.1  # reaches the floor at the new end
    # moved during the warm-up: the decay starts from its top at the end of the warm-up
    early = LRSchedule(1.0, 4, 20, "cosine", 0.1)
    early.set_horizon(2, 40)
    assert [early(s) for s in range(45)] == [lr_at(s, 1.0, 4, 40, "cosine", 0.1) for s in range(45)]


def test_budget_horizon_recovers_from_a_slow_start():
    """Steps take 2 s while another job shares the machine (the first 300 steps), then 1 s: the
    first measurement plans for the slow rate; re-measured, the plan ends near the real last step."""
    budget_s = 3000.0
    horizon = BudgetHorizon(budget_s, max_steps=100000, start_step=0)
    elapsed, step, plans = 0.0, 0, []
    while elapsed < budget_s:
        step += 1
        elapsed += 2.0 if step <= 300 else 1.0
        measured = horizon.update(step, elapsed)
        if measured:
            plans.append((step, *measured))
    first_step, first_plan, first_rate = plans[0]
    assert first_step == 120 and first_rate == pytest.approx(0.5)
    assert first_plan < 0.6 * step  # one measurement would end the decay at ~1,500 of 2,700 steps
    assert abs(plans[-1][1] - step) < 0.06 * step and plans[-1][2] == pytest.approx(1.0)
    assert all(p[0] % 100 == 20 for p in plans)  # every 100 steps after the first
    capped = BudgetHorizon(budget_s, max_steps=500, start_step=0)
    assert [capped.update(s, 0.1 * s) for s in range(1, 121)][-1] == (500, pytest.approx(10.0))
    resumed = BudgetHorizon(budget_s, max_steps=100000, start_step=1000)
    assert all(resumed.update(s, s - 1000.0) is None for s in range(1001, 1120))
    assert resumed.update(1120, 120.0)[0] == 1120 + int(0.95 * (budget_s - 120))


def test_optimizer_state_round_trip():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        model(torch.randn(5, 3)).square().mean().backward()
        opt.step()
        opt.zero_grad()
    tensors, meta = flatten_optimizer_state(opt.state_dict())
    json.dumps(meta)  # the non-tensor part is plain JSON
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    opt2 = torch.optim.AdamW(model.parameters(), lr=1.0)
    opt2.load_state_dict(unflatten_optimizer_state(tensors, json.loads(json.dumps(meta))))
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for k in a["state"][i]:
            assert torch.equal(a["state"][i][k], b["state"][i][k])
