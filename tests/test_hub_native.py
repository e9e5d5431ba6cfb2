"""Hub-native to the last field (issue 25): the Mixin's own ``from_pretrained`` keywords, model
cards that ``ModelCard.load`` parses (licence, datasets, pipeline tag, a model-index equal to the
result file's), PEFT adapters that name their base and wrapper as calls that load them, and no
absolute path in any file of a checkpoint or a result.

The Hub is never reached: repositories are put into a private Hub cache as ``snapshot_download``
leaves them (``test_checkpoints_hub._fake_hub_repo``), and ``HF_HUB_OFFLINE=1`` (conftest).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from test_checkpoints_hub import _FakeHubApi, _fake_hub_repo, _same_outputs, _tiny_unet, fake_imagenet_vit, hub_cache  # noqa: F401

from fetal_bench.errors import FetalBenchError
from fetal_bench.models import save_checkpoint
from fetal_bench.models.unet import UNetSegmenter

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.data.pinned_files.PretrainedWeightsWarning")


# ----------------------------------------------------------------------------------------------
# from_pretrained: the Mixin's keywords, through its _from_pretrained hook
# ----------------------------------------------------------------------------------------------


def test_from_pretrained_is_the_mixins_own():
    """Only the hook is ours: the keywords are the Mixin's signature, not a copy of it."""
    from huggingface_hub import ModelHubMixin

    from fetal_bench.models.hub import FetalBenchModel

    assert "from_pretrained" not in vars(FetalBenchModel) and "_from_pretrained" in vars(FetalBenchModel)
    assert UNetSegmenter.from_pretrained.__func__ is ModelHubMixin.from_pretrained.__func__


def test_from_pretrained_cache_dir_local_files_only_and_revision(hub_cache, tmp_path):
    own_cache = tmp_path / "own-cache"
    own_cache.mkdir()
    first, second = _tiny_unet(seed=1), _tiny_unet(seed=2)
    save_checkpoint(first, tmp_path / "v1", run_name="first")
    save_checkpoint(second, tmp_path / "v2", run_name="second")
    _fake_hub_repo(own_cache, "me/unet", tmp_path / "v1", refs=("v1",))
    _fake_hub_repo(own_cache, "me/unet", tmp_path / "v2", refs=("main",))

    # cache_dir: the repository is only in this cache, not in the default one.
    restored = UNetSegmenter.from_pretrained("me/unet", cache_dir=own_cache, local_files_only=True)
    assert _same_outputs(second, restored) and not restored.training
    # Not in the default cache. The Mixin reads config.json before its hook runs, so the error is
    # huggingface_hub's own, as for any Mixin model (load_checkpoint words it for fetal-bench).
    from huggingface_hub.errors import LocalEntryNotFoundError

    with pytest.raises(LocalEntryNotFoundError):
        UNetSegmenter.from_pretrained("me/unet", local_files_only=True)
    # revision: the tag, not main.
    assert _same_outputs(first, UNetSegmenter.from_pretrained("me/unet", cache_dir=str(own_cache), revision="v1"))
    with pytest.raises(LocalEntryNotFoundError):
        UNetSegmenter.from_pretrained("me/unet", cache_dir=own_cache, revision="v3")


def test_from_pretrained_passes_token_and_force_download_to_the_downloads(hub_cache, tmp_path, monkeypatch):
    """Offline, a forced download is refused by huggingface_hub itself; the spies record what
    each download call was given and run the real call without forcing."""
    import huggingface_hub
    from huggingface_hub import hub_mixin

    save_checkpoint(_tiny_unet(seed=3), tmp_path / "published")
    _fake_hub_repo(hub_cache, "me/unet-token", tmp_path / "published")
    calls = []

    def spy(real):
        def call(*args, **kwargs):
            calls.append((real.__name__, kwargs.get("token"), kwargs.get("force_download")))
            return real(*args, **{**kwargs, "force_download": False})
        return call

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy(huggingface_hub.snapshot_download))
    monkeypatch.setattr(hub_mixin, "hf_hub_download", spy(hub_mixin.hf_hub_download))
    UNetSegmenter.from_pretrained("me/unet-token", token="hf_secret", force_download=True)
    assert calls == [("hf_hub_download", "hf_secret", True), ("snapshot_download", "hf_secret", True)]


def test_from_pretrained_map_location_and_builder_options(tmp_path):
    from fetal_bench.models.hub import FetalBenchModel

    save_checkpoint(_tiny_unet(seed=4), tmp_path / "run")
    assert isinstance(FetalBenchModel.from_pretrained(tmp_path / "run"), UNetSegmenter)  # the card's generic entry
    on_meta = UNetSegmenter.from_pretrained(tmp_path / "run", map_location="meta")
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    on_cpu = UNetSegmenter.from_pretrained(tmp_path / "run", map_location=torch.device("cpu"))
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}
    # Other keywords are builder options (as for create_model), never the constructor's.
    with pytest.raises(FetalBenchError, match=r"has no option\(s\) \['colour'\]"):
        UNetSegmenter.from_pretrained(tmp_path / "run", colour="red")
    with pytest.raises(FetalBenchError, match="do not fit the model"):
        UNetSegmenter.from_pretrained(tmp_path / "run", base_channels=8)


def test_from_pretrained_strict(tmp_path):
    from safetensors.torch import load_file, save_file

    model = _tiny_unet(seed=5)
    save_checkpoint(model, tmp_path / "run")
    tensors = load_file(tmp_path / "run" / "model.safetensors")
    tensors["stray.weight"] = torch.zeros(2)
    save_file(tensors, tmp_path / "run" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(FetalBenchError, match="unexpected \\['stray.weight'\\]"):
        UNetSegmenter.from_pretrained(tmp_path / "run")  # strict by default
    assert _same_outputs(model, UNetSegmenter.from_pretrained(tmp_path / "run", strict=False))


# ----------------------------------------------------------------------------------------------
# A trained, evaluated and pushed checkpoint: its card and its files
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_and_scored(phantom, tmp_path_factory):
    """A tiny U-Net trained for 2 steps on the phantom set, and its result file."""
    from fetal_bench.evaluation import evaluate
    from fetal_bench.training import TrainConfig, train

    root = tmp_path_factory.mktemp("hub-native")
    train(TrainConfig(model="unet", task="phantom-head-seg", data=str(phantom), output=str(root / "run"),
                      model_cfg={"base_channels": 4, "depth": 2}, image_size=(32, 48), max_steps=2, batch_size=16,
                      progress=False, patience=None))
    result = evaluate("phantom-head-seg", model="unet", checkpoint=root / "run", data=phantom,
                      output=root / "results", n_resamples=10)
    return root / "run", Path(result["_path"])


_ABSOLUTE = re.compile(r"(?<![\w.:/])/(?:tmp|home|root|usr|var|work|Users|private|mnt)/|[A-Za-z]:\\\\")


def _absolute_paths(directory: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("latin-1")
        hits = sorted(set(_ABSOLUTE.findall(text)))
        if hits or str(directory.parent) in text:
            found[path.name] = hits
    return found


def test_no_absolute_path_in_a_checkpoint_or_a_result(trained_and_scored, tmp_path):
    import shutil

    from fetal_bench.models.checkpoint import _FILES

    run, result = trained_and_scored
    # The checkpoint is what save_checkpoint writes and push uploads (the run's logs stay behind).
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    for name in _FILES:
        if (run / name).is_file():
            shutil.copy(run / name, checkpoint / name)
    assert sorted(p.name for p in checkpoint.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert _absolute_paths(checkpoint) == {}
    assert _absolute_paths(result.parent) == {}
    # The scan finds one when there is one (the test can fail).
    (checkpoint / "note.txt").write_text(f"trained from {run}")
    assert "note.txt" in _absolute_paths(checkpoint)

    data = json.loads((run / "config.json").read_text())["training"]["data"]["data"]
    assert data["dataset"] == "phantom" and data["revision"] == "generator-v1" and data["source"] == "local:phantom"
    assert (data["config"], data["split"]) == ("head", "train") and re.fullmatch("[0-9a-f]{64}", data["fingerprint"])


def test_a_pushed_checkpoints_card_parses_and_quotes_the_result_exactly(trained_and_scored, hub_cache, tmp_path,
                                                                         monkeypatch):
    import shutil

    from click.testing import CliRunner
    from huggingface_hub import ModelCard

    from fetal_bench.cli import cli
    from fetal_bench.models import checkpoint as checkpoint_module

    run, result_path = trained_and_scored
    directory = tmp_path / "run"
    shutil.copytree(run, directory)
    api = _FakeHubApi(hub_cache)  # the HfApi calls, answered into the local Hub cache
    real_push = checkpoint_module.push_checkpoint
    monkeypatch.setattr(checkpoint_module, "push_checkpoint", lambda *a, **k: real_push(*a, **{**k, "api": api}))
    out = CliRunner().invoke(cli, ["models", "push", str(directory), "--repo-id", "me/fetal-unet", "--tag", "v1",
                                   "--result", str(result_path)])
    assert out.exit_code == 0, out.output

    card = ModelCard.load(directory / "README.md")
    data = card.data
    assert data.license == "apache-2.0"  # the phantom set's licence: what the weights were trained on
    assert data.datasets == ["phantom"] and data.pipeline_tag == "image-segmentation"
    assert data.library_name == "fetal-bench"
    result = json.loads(result_path.read_text())
    quoted = {r.metric_type: r.metric_value for r in data.eval_results}
    expected = {k: v["value"] for k, v in result["scores"].items() if k != "main_score" and v["value"] is not None}
    assert quoted == expected and len(quoted) >= 5  # every score, exactly (dice, iou, hd95_mm, ...)
    first = data.eval_results[0]
    assert (first.task_name, first.dataset_split, first.dataset_revision, first.dataset_config) == \
        ("phantom-head-seg", "test", "generator-v1", "head")
    assert 'load_checkpoint("me/fetal-unet")' in card.text and "--checkpoint me/fetal-unet " in card.text
    assert 'FetalBenchModel.from_pretrained("me/fetal-unet")' in card.text
    assert "ORG/NAME" not in card.text and "path/to/this" not in card.text
    # What was uploaded is that card, and the repository loads back with it.
    uploaded = ModelCard.load(hub_cache / "models--me--fetal-unet" / "snapshots" / api.commit / "README.md")
    assert {r.metric_type: r.metric_value for r in uploaded.data.eval_results} == expected


def test_push_refuses_a_result_of_other_weights(trained_and_scored, tmp_path):
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    run, result_path = trained_and_scored
    other = tmp_path / "other"
    save_checkpoint(_tiny_unet(seed=9), other)
    out = CliRunner().invoke(cli, ["models", "push", str(other), "--repo-id", "me/x", "--result", str(result_path)])
    assert out.exit_code == 2 and "does not score this checkpoint" in out.output


# ----------------------------------------------------------------------------------------------
# A PEFT adapter names its base and wrapper as calls that load them
# ----------------------------------------------------------------------------------------------


def test_a_vit_lora_adapter_names_a_wrapper_that_peft_applies_it_to(fake_imagenet_vit, tmp_path):
    from huggingface_hub import ModelCard
    from peft import PeftModel

    import fetal_bench.models.lora  # the identifier names it
    from fetal_bench.models import create_model, load_checkpoint

    model = create_model("vit_lora", pretrained=True)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(0, 0.02)
    save_checkpoint(model, tmp_path / "vit")
    adapter_config = json.loads((tmp_path / "vit" / "adapter_config.json").read_text())
    wrapper = adapter_config["base_model_name_or_path"]
    assert wrapper.startswith("fetal_bench.models.lora.peft_base_model('vit_lora', ")
    card = ModelCard.load(tmp_path / "vit" / "README.md")
    assert card.data.fetal_bench["adapter_wrapper"] == wrapper
    assert card.data.fetal_bench["adapter_base"] == "torchvision.models.get_model('vit_b_16', weights='IMAGENET1K_V1')"
    assert f"base = {wrapper}" in card.text and "PeftModel.from_pretrained(base" in card.text

    base = eval(wrapper, {"fetal_bench": fetal_bench})  # noqa: S307 (the identifier loads: it is a call)
    assert not any(".lora_" in name for name, _ in base.named_parameters())
    with _no_missing_adapter_keys():
        peft_model = PeftModel.from_pretrained(base, str(tmp_path / "vit")).eval()
    restored, _ = load_checkpoint(tmp_path / "vit")
    x = torch.randn(1, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(peft_model(x), restored.eval()(x), rtol=1e-5, atol=1e-5)


def _no_missing_adapter_keys():
    import warnings
    from contextlib import contextmanager

    @contextmanager
    def check():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        assert not [w for w in caught if "missing adapter keys" in str(w.message).lower()]

    return check()

