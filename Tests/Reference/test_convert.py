"""`hydra convert` on good, hostile and broken checkpoints."""
import collections
import os

import numpy as np
import pytest
import torch

from cli import run
from refinenet import MultiTaskRefineNet, randomise


@pytest.fixture(scope="module")
def state():
    return randomise(MultiTaskRefineNet(6, False), seed=3).state_dict()


def tensors(path):
    from safetensors_reader import read
    return read(path)


@pytest.mark.parametrize("zipfmt", [False, True], ids=["legacy", "zip"])
@pytest.mark.parametrize("layout", ["state_dict", "bare", "module-prefix", "no-counters"])
def test_layouts_convert_to_the_same_weights(tmp_path, hydra, state, zipfmt, layout):
    sd = collections.OrderedDict(state)
    if layout == "no-counters":
        sd = collections.OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    if layout == "module-prefix":
        sd = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    obj = sd if layout == "bare" else {"state_dict": sd, "best_val": 0.5}
    ckpt, out = tmp_path / "m.ckpt", tmp_path / "m.safetensors"
    torch.save(obj, ckpt, _use_new_zipfile_serialization=zipfmt)
    p = run(hydra, "convert", ckpt, out)
    assert ("zip" if zipfmt else "legacy") in p.stdout
    got = tensors(out)
    want = {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k].shape == v.shape and np.array_equal(got[k], v), k


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {Exploit.marker}",))


@pytest.mark.parametrize("zipfmt", [False, True], ids=["legacy", "zip"])
def test_checkpoint_that_runs_code_is_refused(tmp_path, hydra, state, zipfmt):
    marker = tmp_path / "pwned"
    Exploit.marker = marker
    ckpt, out = tmp_path / "evil.ckpt", tmp_path / "evil.safetensors"
    torch.save({"state_dict": dict(state), "payload": Exploit()}, ckpt, _use_new_zipfile_serialization=zipfmt)
    assert not marker.exists()
    p = run(hydra, "convert", ckpt, out, check=False)
    assert p.returncode != 0
    assert "refused" in p.stderr and "system" in p.stderr, p.stderr
    assert not marker.exists(), "the pickle's command ran"
    assert not out.exists(), "output written despite refusal"


@pytest.mark.parametrize("zipfmt", [False, True], ids=["legacy", "zip"])
@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.97])
def test_truncated_checkpoint_is_an_error(tmp_path, hydra, state, zipfmt, fraction):
    ckpt, out = tmp_path / "t.ckpt", tmp_path / "t.safetensors"
    torch.save({"state_dict": state}, ckpt, _use_new_zipfile_serialization=zipfmt)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: int(len(data) * fraction)])
    p = run(hydra, "convert", ckpt, out, check=False)
    assert p.returncode != 0 and p.stderr.strip(), p.stderr
    assert "Fatal" not in p.stderr and "Segmentation" not in p.stderr
    assert not out.exists()


@pytest.mark.parametrize("change,message", [
    ("missing", "missing: layer5.2.output.1.0.weight"),
    ("unexpected", "unexpected: extra.weight"),
    ("shape", "conv_adapt3.weight: expected 256x256x1x1, got 256x128x1x1"),
])
def test_mismatched_weights_are_refused(tmp_path, hydra, state, change, message):
    sd = collections.OrderedDict(state)
    if change == "missing":
        del sd["layer5.2.output.1.0.weight"]
    elif change == "unexpected":
        sd["extra.weight"] = torch.zeros(3)
    else:
        sd["conv_adapt3.weight"] = torch.zeros(256, 128, 1, 1)
    ckpt, out = tmp_path / "w.ckpt", tmp_path / "w.safetensors"
    torch.save({"state_dict": sd}, ckpt)
    p = run(hydra, "convert", ckpt, out, check=False)
    assert p.returncode != 0
    assert message in p.stderr, p.stderr
    assert not out.exists()


def test_preset_must_match_class_count(tmp_path, hydra, state):
    ckpt, out = tmp_path / "p.ckpt", tmp_path / "p.safetensors"
    torch.save({"state_dict": state}, ckpt)
    p = run(hydra, "convert", ckpt, out, "--preset", "nyud", check=False)
    assert p.returncode != 0 and "40 classes" in p.stderr
    run(hydra, "convert", ckpt, out, "--preset", "kitti")
    from safetensors_reader import metadata
    meta = metadata(out)
    assert meta["preset"] == "kitti" and meta["trained"] == "true"
    assert meta["classes"] == '["sky","building","road","sidewalk","vegetation","car"]'
