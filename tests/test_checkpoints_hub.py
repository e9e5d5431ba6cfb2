"""Checkpoints the Hub way: the Mixin's files, a (fake, offline) Hub repository, PEFT adapters for
LoRA models, old checkpoints, and one-way imports in fetal_bench.models.

The Hub is never reached: a repository is put into a private Hub cache exactly as
``snapshot_download`` leaves it (``blobs/``, ``snapshots/<commit>/`` links, ``refs/<branch>``),
and ``HF_HUB_OFFLINE=1`` (conftest) makes huggingface_hub resolve it from there.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from fetal_bench.errors import FetalBenchError
from fetal_bench.models import create_model, load_checkpoint, read_checkpoint, save_checkpoint
from fetal_bench.models.unet import UNetSegmenter

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.data.pinned_files.PretrainedWeightsWarning")

TINY_UNET = {"image_size": (32, 48), "base_channels": 4, "depth": 2}


def _tiny_unet(seed: int = 0) -> UNetSegmenter:
    torch.manual_seed(seed)
    return create_model("unet", **TINY_UNET).eval()


def _x(model, batch: int = 2) -> torch.Tensor:
    height, width = model.spec.image_size
    return torch.randn(batch, model.spec.channels, height, width, generator=torch.Generator().manual_seed(1))


def _same_outputs(a, b, batch: int = 2) -> bool:
    x = _x(a, batch)
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


# ----------------------------------------------------------------------------------------------
# One-way imports
# ----------------------------------------------------------------------------------------------


def test_the_models_registry_is_data_and_the_builder_the_one_way_in():
    """The package-wide graph (tests/test_import_layers.py) seen from models/: the registry
    imports no other models module, the checkpoint layout neither registry nor builder."""
    from test_import_layers import import_graph

    graph = {module.removeprefix("fetal_bench.models."): {m.removeprefix("fetal_bench.models.") for m in imported
                                                          if m.startswith("fetal_bench.models.")}
             for module, imported in import_graph().items() if module.startswith("fetal_bench.models.")}
    assert graph["registry"] == set()  # plain data: imports no other models module
    assert graph["checkpoint"] == {"spec"}  # the file layout: no registry, no builder
    assert {"registry", "checkpoint"} <= graph["builder"]


# ----------------------------------------------------------------------------------------------
# The Mixin, locally
# ----------------------------------------------------------------------------------------------


def test_unet_round_trips_through_the_mixin(tmp_path):
    model = _tiny_unet()
    model.save_pretrained(tmp_path / "unet")
    assert sorted(p.name for p in (tmp_path / "unet").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert config["model"] == "unet" and config["format_version"] == 2
    assert config["weights"] == {"kind": "full", "base": None}
    assert config["cfg"] == {"image_size": [32, 48], "base_channels": 4, "depth": 2, "channels": 1,
                             **({"postprocess": None} if "postprocess" in config["cfg"] else {})}
    card = (tmp_path / "unet" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: fetal-bench\n") and "pytorch_model_hub_mixin" in card

    restored = UNetSegmenter.from_pretrained(tmp_path / "unet")
    assert isinstance(restored, UNetSegmenter) and not restored.training  # eval mode, as the Mixin's
    assert _same_outputs(model, restored)
    with pytest.raises(FetalBenchError, match="holds a 'unet' model"):
        from fetal_bench.models.classifiers import ImageClassifier

        ImageClassifier.from_pretrained(tmp_path / "unet")


def test_save_checkpoint_records_training_and_replaces_weights_of_another_kind(tmp_path):
    model = _tiny_unet()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train_log.jsonl").write_text("{}\n")
    (tmp_path / "run" / "adapter_model.safetensors").write_bytes(b"stale")  # an earlier save of another kind
    save_checkpoint(model, tmp_path / "run", training={"task": "phantom-head-seg", "training_data": "real",
                                                       "best_metric": {"name": "val_dice", "value": 0.5}},
                    run_name="my run\n<script>")
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["README.md", "config.json", "model.safetensors", "train_log.jsonl"]  # no staging left
    checkpoint = read_checkpoint(tmp_path / "run")
    assert (checkpoint.model, checkpoint.weights, checkpoint.run_name) == ("unet", "full", "my run\n<script>")
    assert checkpoint.training["best_metric"]["value"] == 0.5 and checkpoint.revision is None
    assert checkpoint.reference == "run" and checkpoint.spec.image_size == (32, 48)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "# my run script\n" in card and "<script>" not in card and "val_dice: 0.5" in card

    from fetal_bench.models.checkpoint import update_training_info

    update_training_info(tmp_path / "run", {"task": "phantom-head-seg", "best_metric": {"name": "val_dice", "value": 0.75}})
    assert read_checkpoint(tmp_path / "run").training["best_metric"]["value"] == 0.75
    assert "val_dice: 0.75" in (tmp_path / "run" / "README.md").read_text()


# ----------------------------------------------------------------------------------------------
# A Hub repository, from the local Hub cache
# ----------------------------------------------------------------------------------------------


def _fake_hub_repo(cache: Path, repo_id: str, files: Path, *, refs: tuple[str, ...] = ("main",)) -> str:
    """Put the files of ``files`` into ``cache`` as ``snapshot_download`` stores a model repository:
    content-addressed blobs, a snapshot folder per commit whose entries are relative links to the
    blobs, and ``refs/<name>`` files holding the commit. Returns the (made-up) commit hash."""
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    listing = sorted((p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files.iterdir() if p.is_file())
    commit = hashlib.sha1(f"{repo_id}:{listing}".encode()).hexdigest()  # other files, another commit
    snapshot = storage / "snapshots" / commit
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for path in sorted(p for p in files.iterdir() if not p.name.startswith(".")):  # hidden files stay local
        blob = hashlib.sha256(path.read_bytes()).hexdigest()  # LFS files are named by their sha256
        (storage / "blobs" / blob).write_bytes(path.read_bytes())
        os.symlink(Path("..", "..", "blobs", blob), snapshot / path.name)
    (storage / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (storage / "refs" / ref).write_text(commit)  # no newline, as huggingface_hub writes it
    return commit


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache of this test's own (huggingface_hub reads the constant at call time)."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-hub-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # conftest: never the network
    return cache


def test_unet_loads_from_a_hub_repository_in_the_offline_cache(hub_cache, tmp_path):
    model = _tiny_unet(seed=3)
    save_checkpoint(model, tmp_path / "published", run_name="unet-v1")
    commit = _fake_hub_repo(hub_cache, "fetal-bench/unet-test", tmp_path / "published", refs=("main", "v1"))

    for reference, revision in (("fetal-bench/unet-test", None), ("fetal-bench/unet-test@v1", None),
                                ("fetal-bench/unet-test", commit)):
        restored, checkpoint = load_checkpoint(reference, revision=revision)
        assert _same_outputs(model, restored)
        assert (checkpoint.source, checkpoint.revision) == ("fetal-bench/unet-test", commit)
        assert checkpoint.reference == f"fetal-bench/unet-test@{commit}" and checkpoint.run_name == "unet-v1"
    assert _same_outputs(model, UNetSegmenter.from_pretrained("fetal-bench/unet-test", revision="v1"))
    assert _same_outputs(model, create_model("unet", checkpoint="fetal-bench/unet-test"))

    with pytest.raises(FetalBenchError, match="not in the local Hub cache") as missing:
        load_checkpoint("fetal-bench/no-such-model")
    assert "hf download fetal-bench/no-such-model" in missing.value.fix
    with pytest.raises(FetalBenchError, match="not in the local Hub cache"):
        load_checkpoint("fetal-bench/unet-test@v2")
    with pytest.raises(FetalBenchError, match="holds a 'unet' model, not 'resnet18'"):
        create_model("resnet18", checkpoint="fetal-bench/unet-test")


def test_evaluate_cli_runs_a_hub_checkpoint_offline(hub_cache, phantom, tmp_path):
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    save_checkpoint(_tiny_unet(seed=4), tmp_path / "published", run_name="hub-unet")
    commit = _fake_hub_repo(hub_cache, "fetal-bench/unet-eval", tmp_path / "published")
    result = CliRunner().invoke(cli, ["evaluate", "--task", "phantom-head-seg", "--model", "unet", "--checkpoint",
                                      "fetal-bench/unet-eval", "--data", str(phantom), "--output",
                                      str(tmp_path / "results"), "--bootstrap", "10"])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "results").glob("*.json")
    submission = json.loads(path.read_text())["submission"]
    assert submission["checkpoint"] == f"fetal-bench/unet-eval@{commit}" and submission["name"] == "hub-unet"

    missing = CliRunner().invoke(cli, ["evaluate", "--task", "phantom-head-seg", "--model", "unet", "--checkpoint",
                                       "fetal-bench/absent", "--data", str(phantom), "--output", str(tmp_path / "r2")])
    assert missing.exit_code == 2 and "not in the local Hub cache" in missing.output and "Fix:" in missing.output


# ----------------------------------------------------------------------------------------------
# Old and foreign checkpoints
# ----------------------------------------------------------------------------------------------


def _format_1_checkpoint(model, directory: Path) -> None:
    """What fetal-bench wrote before format 2 (commit 49b27ee): the full weights and a config
    without ``weights``, no model card."""
    from safetensors.torch import save_model

    directory.mkdir(parents=True)
    save_model(model, str(directory / "model.safetensors"), metadata={"format": "pt", "model": model.model_name})
    config = {"model": model.model_name, "cfg": model.model_cfg, "spec": model.spec.to_dict(),
              "training": {"task": "phantom-head-seg", "training_data": "real"}, "run_name": "old",
              "format_version": 1, "fetal_bench_version": "0.1.0"}
    (directory / "config.json").write_text(json.dumps(config, default=list))


def test_format_1_checkpoints_keep_loading(tmp_path):
    model = _tiny_unet(seed=5)
    _format_1_checkpoint(model, tmp_path / "old")
    restored, checkpoint = load_checkpoint(tmp_path / "old")
    assert (checkpoint.format_version, checkpoint.weights, checkpoint.run_name) == (1, "full", "old")
    assert _same_outputs(model, restored)
    vit = create_model("vit_lora", variant="tiny", image_size=(32, 32))
    _format_1_checkpoint(vit, tmp_path / "old-lora")  # a LoRA model saved whole, as before adapters
    assert _same_outputs(vit, create_model("vit_lora", checkpoint=tmp_path / "old-lora"))


def test_foreign_and_future_checkpoints_fail_clearly(tmp_path):
    save_checkpoint(_tiny_unet(), tmp_path / "new")
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    (tmp_path / "new" / "config.json").write_text(json.dumps({**config, "format_version": 3}))
    with pytest.raises(FetalBenchError, match="format version 3; this fetal-bench reads up to 2") as future:
        load_checkpoint(tmp_path / "new")
    assert "Upgrade fetal-bench" in future.value.fix
    # A plain PyTorchModelHubMixin repository: its config.json holds constructor arguments.
    (tmp_path / "new" / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(FetalBenchError, match="lacks the 'model'/'cfg' entries"):
        load_checkpoint(tmp_path / "new")
    (tmp_path / "new" / "config.json").write_text(json.dumps({**config, "weights": {"kind": "adapter", "base": {}}}))
    with pytest.raises(FetalBenchError, match="lacks adapter_model.safetensors, adapter_config.json"):
        load_checkpoint(tmp_path / "new")
    (tmp_path / "new" / "config.json").unlink()
    with pytest.raises(FetalBenchError, match="has no config.json next to model.safetensors"):
        load_checkpoint(tmp_path / "new")
    with pytest.raises(FetalBenchError, match="is a file, not a checkpoint directory"):
        load_checkpoint(tmp_path / "new" / "model.safetensors")
    with pytest.raises(FetalBenchError, match="does not exist"):
        load_checkpoint("no such dir/at all")


# ----------------------------------------------------------------------------------------------
# LoRA: adapters only
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def fake_imagenet_vit(monkeypatch):
    """torchvision's ImageNet ViT-B/16 as the builder would read it from its cache, with random
    values (the real file is 330 MB and never downloaded in tests). ``swap()`` changes it, as a
    different file would."""
    import torchvision

    from fetal_bench.models import classifiers

    torch.manual_seed(0)
    current = {"state": torchvision.models.vit_b_16(weights=None).state_dict()}
    monkeypatch.setattr(classifiers, "_imagenet_state_dict",
                        lambda arch, required: current["state"] if arch == "vit_b_16" else None)

    class Source:
        @staticmethod
        def swap() -> None:
            """One value of one tensor changes."""
            changed = dict(current["state"])
            changed["encoder.ln.weight"] = changed["encoder.ln.weight"].clone()
            changed["encoder.ln.weight"][0] += 1e-3
            current["state"] = changed

    return Source


def test_vit_lora_checkpoint_is_a_peft_adapter_under_10_mb(fake_imagenet_vit, tmp_path):
    from peft import LoraConfig, get_peft_model_state_dict
    from peft.utils import load_peft_weights

    model = create_model("vit_lora", pretrained=True)  # ViT-B/16 at 224, the registered size
    assert model.base_reference()["file"] == "vit_b_16-c867db91.pth"
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for parameter in trained.values():
            parameter.normal_(0, 0.02)  # as if trained: LoRA B starts at zero
    save_checkpoint(model, tmp_path / "vit", run_name="iqa")

    files = {p.name: p.stat().st_size for p in (tmp_path / "vit").iterdir()}
    assert sorted(files) == ["README.md", "adapter_config.json", "adapter_model.safetensors", "config.json"]
    assert sum(files.values()) < 10 * 2**20  # vs 346 MB for every weight
    n_trained = sum(p.numel() for p in trained.values())
    assert n_trained == 1_181_186  # LoRA r=8: 12 blocks x 98,304 = 1,179,648; the head: 768x2 + 2
    saved = load_peft_weights(str(tmp_path / "vit"))
    assert sum(t.numel() for t in saved.values()) == n_trained  # the trained parameters, nothing else
    # PEFT's own names: what PeftModel.save_pretrained writes, with the head as a module to save.
    lora_keys = {"base_model.model.encoder." + k for k in get_peft_model_state_dict(model.encoder)}
    head_keys = {"base_model.model.head." + k for k in model.head.state_dict()}  # torchvision's heads.head
    assert head_keys == {"base_model.model.head.head.weight", "base_model.model.head.head.bias"}
    assert set(saved) == lora_keys | head_keys
    peft_config = LoraConfig.from_pretrained(str(tmp_path / "vit"))
    assert (peft_config.r, peft_config.lora_alpha, peft_config.modules_to_save) == (8, 16, ["head.head"])

    config = json.loads((tmp_path / "vit" / "config.json").read_text())
    assert config["weights"]["kind"] == "adapter" and config["weights"]["base"]["options"] == {"pretrained": True}
    assert len(config["weights"]["base"]["sha256"]) == 64
    restored, checkpoint = load_checkpoint(tmp_path / "vit")
    assert checkpoint.weights == "adapter" and _same_outputs(model, restored, batch=1)

    fake_imagenet_vit.swap()  # another base file than the adapter was trained on
    with pytest.raises(FetalBenchError, match="are not those its adapter was trained on") as wrong:
        load_checkpoint(tmp_path / "vit")
    assert "vit_b_16-c867db91.pth" in wrong.value.fix


def test_a_lora_model_whose_base_changed_is_saved_whole(tmp_path):
    from fetal_bench.models.checkpoint import base_sha256

    model = create_model("vit_lora", variant="tiny", image_size=(32, 32))
    save_checkpoint(model, tmp_path / "random-base")  # no source rebuilds a random base
    assert read_checkpoint(tmp_path / "random-base").weights == "full"
    # As if built from a registered source, then given other base weights (a full checkpoint):
    model._base = {"name": "test source", "options": {}}
    model.base_source_sha256 = base_sha256(model)
    save_checkpoint(model, tmp_path / "adapter")
    assert read_checkpoint(tmp_path / "adapter").weights == "adapter"
    assert not (tmp_path / "adapter" / "model.safetensors").exists()
    with torch.no_grad():
        model.encoder.conv_proj.weight.add_(1.0)
    save_checkpoint(model, tmp_path / "adapter")  # the same directory: the adapter files go
    assert read_checkpoint(tmp_path / "adapter").weights == "full"
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["README.md", "config.json", "model.safetensors"]


def _tiny_fetalclip(directory: Path) -> tuple[Path, Path]:
    open_clip = pytest.importorskip("open_clip")
    config = {"embed_dim": 8, "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "patch_size": 8, "head_width": 8},
              "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 8, "heads": 1, "layers": 1}}
    directory.mkdir()
    (directory / "FetalCLIP_config.json").write_text(json.dumps(config))
    open_clip.factory._MODEL_CONFIGS["fetal-bench-test-clip-h5"] = config
    try:
        torch.manual_seed(0)
        torch.save(open_clip.create_model("fetal-bench-test-clip-h5").state_dict(), directory / "FetalCLIP_weights.pt")
    finally:
        del open_clip.factory._MODEL_CONFIGS["fetal-bench-test-clip-h5"]
    return directory / "FetalCLIP_config.json", directory / "FetalCLIP_weights.pt"


def test_fetalclip_checkpoint_never_holds_the_fetalclip_weights(hub_cache, tmp_path, monkeypatch):
    from safetensors import safe_open

    config, weights = _tiny_fetalclip(tmp_path / "user-files")
    model = create_model("fetalclip_lora", config=config, weights=weights)
    save_checkpoint(model, tmp_path / "clip")
    with safe_open(str(tmp_path / "clip" / "adapter_model.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    assert keys and all(".lora_" in key or key.startswith("base_model.model.head.") for key in keys)
    assert not (tmp_path / "clip" / "model.safetensors").exists()
    assert "non-commercial" in (tmp_path / "clip" / "README.md").read_text()
    # This machine's path of the user's file is kept beside the checkpoint, never in what is published.
    assert str(tmp_path) not in (tmp_path / "clip" / "config.json").read_text() + (tmp_path / "clip" / "README.md").read_text()
    assert json.loads((tmp_path / "clip" / ".fetal-bench-local.json").read_text()) == {"weights": str(weights)}
    assert _same_outputs(model, create_model("fetalclip_lora", checkpoint=tmp_path / "clip"), batch=1)  # local path

    # From the Hub, the recorded path of another machine is ignored: the user points at their copy.
    _fake_hub_repo(hub_cache, "someone/fetalclip-iqa", tmp_path / "clip")
    monkeypatch.delenv("FETAL_BENCH_FETALCLIP_WEIGHTS", raising=False)
    with pytest.raises(FetalBenchError, match="needs the FetalCLIP weights"):
        load_checkpoint("someone/fetalclip-iqa")
    monkeypatch.setenv("FETAL_BENCH_FETALCLIP_WEIGHTS", str(weights))
    restored, checkpoint = load_checkpoint("someone/fetalclip-iqa")
    assert checkpoint.weights == "adapter" and _same_outputs(model, restored, batch=1)


def test_predict_cli_takes_a_hub_checkpoint(hub_cache, tmp_path):
    import csv

    import numpy as np
    from click.testing import CliRunner
    from PIL import Image

    from fetal_bench.cli import cli

    save_checkpoint(_tiny_unet(seed=6), tmp_path / "published")
    _fake_hub_repo(hub_cache, "fetal-bench/unet-predict", tmp_path / "published", refs=("main", "v1"))
    image = tmp_path / "scan.png"
    Image.fromarray((np.random.default_rng(0).random((40, 60)) * 255).astype(np.uint8)).save(image)
    out = tmp_path / "heads.csv"
    result = CliRunner().invoke(cli, ["predict", "--model", "unet", "--checkpoint", "fetal-bench/unet-predict@v1",
                                      "--output", str(out), str(image)])
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(out.open())
    assert row["file"] == str(image) and Image.open(out.parent / row["mask"]).size == (60, 40)


def test_models_info_cli_shows_a_checkpoint_without_loading_it(hub_cache, tmp_path):
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    save_checkpoint(_tiny_unet(), tmp_path / "published", training={"task": "phantom-head-seg",
                                                                    "best_metric": {"name": "val_dice", "value": 0.5}},
                    run_name="[bold]x[/bold]")
    commit = _fake_hub_repo(hub_cache, "fetal-bench/unet-info", tmp_path / "published")
    result = CliRunner().invoke(cli, ["models", "info", "fetal-bench/unet-info"])
    assert result.exit_code == 0, result.output
    for text in (f"fetal-bench/unet-info@{commit}", "every tensor (model.safetensors)", "[bold]x[/bold]",
                 "val_dice = 0.5", "32x48, 1 channel(s)"):
        assert text in result.output
    as_json = CliRunner().invoke(cli, ["models", "info", str(tmp_path / "published"), "--json"])
    assert json.loads(as_json.output)["config"]["model"] == "unet"
    missing = CliRunner().invoke(cli, ["models", "info", str(tmp_path / "nothing-here")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_peft_itself_applies_the_saved_adapter(tmp_path):
    """PeftModel.from_pretrained on the plain (un-adapted) network gives the same outputs as
    fetal-bench's own loading: the files are PEFT's format, not just PEFT-like names."""
    import torchvision
    from peft import PeftModel
    from torch import nn

    from fetal_bench.models.checkpoint import base_sha256
    from fetal_bench.models.classifiers import _adapt_first_conv
    from fetal_bench.models.lora import _TINY_VIT

    torch.manual_seed(0)
    model = create_model("vit_lora", variant="tiny", image_size=(32, 32)).eval()
    model._base = {"name": "test source", "options": {}}  # as if its base came from a registered source
    model.base_source_sha256 = base_sha256(model)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                parameter.normal_(0, 0.1)
    save_checkpoint(model, tmp_path / "adapter")
    assert read_checkpoint(tmp_path / "adapter").weights == "adapter"

    class Plain(nn.Module):  # the same network without adapters, as a PEFT user would have it
        def __init__(self):
            super().__init__()
            vit = torchvision.models.VisionTransformer(image_size=32, num_classes=2, **_TINY_VIT)
            _adapt_first_conv(vit, 1)
            self.head, vit.heads = vit.heads, nn.Identity()
            self.encoder = vit

        def forward(self, x):
            return self.head(self.encoder(x))

    plain = Plain()
    base = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items() if ".lora_" not in k}
    plain.load_state_dict(base, strict=True)
    peft_model = PeftModel.from_pretrained(plain, str(tmp_path / "adapter")).eval()
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(peft_model(x), model(x), rtol=1e-5, atol=1e-6)


class _FakeHubApi:
    """The HfApi calls push_checkpoint makes, answered by writing into a local Hub cache as a
    download of the new commit would leave it (so the pushed repository then loads offline)."""

    def __init__(self, cache: Path):
        self.cache, self.tags, self.uploads = cache, set(), []

    def create_repo(self, repo_id, **kwargs):
        assert kwargs["repo_type"] == "model"

    def list_repo_refs(self, repo_id, **kwargs):
        from types import SimpleNamespace

        return SimpleNamespace(tags=[SimpleNamespace(name=t) for t in sorted(self.tags)])

    def upload_folder(self, **kwargs):
        import shutil
        from types import SimpleNamespace

        from huggingface_hub.utils import filter_repo_objects

        folder = Path(kwargs["folder_path"])
        sent = sorted(filter_repo_objects([p.name for p in folder.iterdir()], allow_patterns=kwargs["allow_patterns"]))
        self.uploads.append((sent, kwargs["delete_patterns"]))
        staged = self.cache.parent / f"upload-{len(self.uploads)}"
        staged.mkdir()
        for name in sent:
            shutil.copy(folder / name, staged / name)
        self.commit = _fake_hub_repo(self.cache, kwargs["repo_id"], staged)
        return SimpleNamespace(oid=self.commit, commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/x")

    def create_tag(self, repo_id, *, tag, revision, **kwargs):
        self.tags.add(tag)
        (self.cache / f"models--{repo_id.replace('/', '--')}" / "refs" / tag).write_text(revision)


def test_push_uploads_only_the_checkpoint_and_it_loads_back(hub_cache, tmp_path):
    from fetal_bench.models.checkpoint import push_checkpoint

    model = _tiny_unet(seed=7)
    save_checkpoint(model, tmp_path / "run", run_name="pushed")
    (tmp_path / "run" / "train_log.jsonl").write_text("{}\n")  # a run's files stay behind
    (tmp_path / "run" / "checkpoints").mkdir()
    api = _FakeHubApi(hub_cache)
    commit, _ = push_checkpoint(tmp_path / "run", "me/unet", tag="v1", api=api)
    assert api.uploads == [(["README.md", "config.json", "model.safetensors"],
                            ["adapter_config.json", "adapter_model.safetensors"])]
    restored, checkpoint = load_checkpoint("me/unet@v1")
    assert checkpoint.revision == commit and _same_outputs(model, restored)
    with pytest.raises(FetalBenchError, match="Tag v1 already exists on me/unet"):
        push_checkpoint(tmp_path / "run", "me/unet", tag="v1", api=api)
    with pytest.raises(FetalBenchError, match="a repository id OWNER/NAME"):
        push_checkpoint(tmp_path / "run", "me/unet@v2", api=api)
    # The real client, offline: a clear error, nothing half-done.
    with pytest.raises(FetalBenchError, match="Pushing .* to me/unet failed") as offline:
        push_checkpoint(tmp_path / "run", "me/unet")
    assert "HF_HUB_OFFLINE" in offline.value.fix
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    result = CliRunner().invoke(cli, ["models", "push", str(tmp_path / "run"), "--repo-id", "me/unet"])
    assert result.exit_code == 2 and "Error:" in result.output and "Fix:" in result.output


def test_loading_returns_its_checkpoint_and_pins_nothing_on_the_model(tmp_path):
    """What was loaded travels with the model to the caller (the harness records it), never as
    an attribute of the module."""
    from fetal_bench.models import Checkpoint, create_inference_model

    save_checkpoint(_tiny_unet(seed=3), tmp_path / "run", run_name="pinned-nowhere")
    model, checkpoint = create_inference_model("unet", checkpoint=tmp_path / "run")
    assert isinstance(checkpoint, Checkpoint) and (checkpoint.model, checkpoint.run_name) == ("unet", "pinned-nowhere")
    assert not any(isinstance(value, Checkpoint) for value in vars(model).values())
    assert _same_outputs(model, _tiny_unet(seed=3))
