"""The papers' protocols: configs load with the papers' settings, and each runs end to end at
tiny scale on the phantom set (`--set profile=tiny`)."""

from __future__ import annotations

import json

import pytest

from fetal_bench.errors import FetalBenchError
from fetal_bench.protocols import list_protocols, load_config, run_protocol

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.data.pinned_files.PretrainedWeightsWarning")


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.getbasetemp() / "fetal-bench-cache"
    monkeypatch.setenv("FETAL_BENCH_CACHE", str(root))  # phantom builds and the synthetic stand-in
    return root


def test_configs_hold_the_papers_settings():
    fu = load_config("fu-lora-zero-shot")
    assert fu["train"]["optimizer"] == "sgd" and fu["train"]["lr"] == 0.001 and fu["train"]["momentum"] == 0.9
    assert fu["train"]["batch_size"] == 24 and fu["train"]["epochs"] == 20
    assert fu["backbones"] == ["densenet169", "mobilenet_v2", "efficientnet_b0", "resnet18", "vit_b_16"]
    assert set(fu["variants"]) == {"ES", "ES+DA", "HB", "HB+DA"} and fu["exclude_labels"] == ["Maternal cervix"]
    assert fu["variants"]["HB"]["real_list"] == "fu-lora-hb" and fu["variants"]["HB"]["synthetic_per_class"] == 1000
    # FU-LoRA's notebook: Normalize([0,0,0],[1,1,1]) (none) and Resize((224, 224)) for every image.
    assert fu["train"]["model_cfg"]["normalize"] == "none" and fu["resize"] == "stretch"
    assert fu["train"]["image_size"] == [224, 224] and fu["train"]["keep"] == "last"
    sam = load_config("sam-few-shot")
    assert sam["shots"] == [5, 10, 20, 50, 100, 300, 500] and sam["jitter_draws"] == 5 and sam["jitter"] == [0, 20]
    assert sam["train"]["lr"] == 1e-5 and sam["train"]["batch_size"] == 5 and sam["model_cfg"]["image_size"] == [256, 256]
    tiny = load_config("sam-few-shot", overrides={"profile": "tiny", "train.epochs": 3})
    assert tiny["train"]["epochs"] == 3 and tiny["train"]["lr"] == 1e-5 and tiny["model_cfg"]["variant"] == "tiny"
    assert {p.name for p in list_protocols()} == {"fu-lora-zero-shot", "tian-pretrain-finetune",
                                                  "synthetic-ratio-curve", "sam-few-shot"}
    with pytest.raises(FetalBenchError, match="no profile"):
        load_config("sam-few-shot", overrides={"profile": "huge"})


def test_overrides_are_strict():
    # A misspelt key is refused with the closest valid key and the list of valid ones.
    with pytest.raises(FetalBenchError) as error:
        load_config("fu-lora-zero-shot", overrides={"trainng.lr": 0.1})
    assert str(error.value).startswith("Unknown configuration key 'trainng' (in --set trainng.lr=0.1).")
    assert "Did you mean 'train'?" in error.value.fix and "backbones, bootstrap, data, eval_data" in error.value.fix
    with pytest.raises(FetalBenchError, match="Unknown configuration key 'train.lrr'") as error:
        load_config("fu-lora-zero-shot", overrides={"train.lrr": 0.1})
    assert "Did you mean 'train.lr'?" in error.value.fix
    # Inside a variant, the keys are training options.
    with pytest.raises(FetalBenchError, match="Unknown configuration key 'variants.ES.augmnt'") as error:
        load_config("fu-lora-zero-shot", overrides={"variants.ES.augmnt": "none"})
    assert "Did you mean 'variants.ES.augment'?" in error.value.fix
    # A value of the wrong shape: a mapping where one value belongs, or the reverse.
    with pytest.raises(FetalBenchError, match="'train.lr' .* must be a single value"):
        load_config("fu-lora-zero-shot", overrides={"train.lr.x": 1})
    with pytest.raises(FetalBenchError, match="'train' .* must be a mapping"):
        load_config("fu-lora-zero-shot", overrides={"train": 3})
    with pytest.raises(FetalBenchError, match="empty part"):
        load_config("fu-lora-zero-shot", overrides={"train..lr": 1})
    # What is allowed: known keys, training options the YAML leaves at their default, model
    # options (checked by the model), one setting of one variant (the others are kept).
    config = load_config("fu-lora-zero-shot", overrides={
        "train.lr": 0.1, "train.max_steps": 7, "train.model_cfg.dropout": 0.5, "variants.HB.augment": "fu-lora"})
    assert config["train"]["lr"] == 0.1 and config["train"]["max_steps"] == 7 and config["train"]["momentum"] == 0.9
    assert config["train"]["model_cfg"] == {"pretrained": True, "channels": 3, "normalize": "none", "dropout": 0.5}
    assert config["variants"]["HB"] == {"augment": "fu-lora", "real_list": "fu-lora-hb", "synthetic_per_class": 1000}
    assert config["variants"]["ES"] == {"augment": "none"} and len(config["variants"]) == 4
    only_es = load_config("fu-lora-zero-shot", overrides={"variants": {"ES": {"augment": "fu-lora"}}})
    assert only_es["variants"] == {"ES": {"augment": "fu-lora"}}  # a whole mapping replaces the list
    # A profile's variants replace the full run's; every shipped profile passes the strict merge.
    assert list(load_config("fu-lora-zero-shot", overrides={"profile": "tiny"})["variants"]) == ["ES", "HB+DA"]
    for protocol in list_protocols():
        load_config(protocol.name, overrides={"profile": "tiny"})


def test_cli_refuses_a_misspelt_override(tmp_path):
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    result = CliRunner().invoke(cli, ["protocols", "run", "fu-lora-zero-shot", "--output", str(tmp_path / "out"),
                                      "--dry-run", "--set", "trainng.lr=0.1"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "Error: Unknown configuration key 'trainng' (in --set trainng.lr=0.1)." in text
    assert "Fix: Did you mean 'train'?" in text
    assert not (tmp_path / "out").exists()


def test_full_runs_ask_for_their_data(tmp_path):
    with pytest.raises(FetalBenchError, match="needs `synthetic`"):
        run_protocol("fu-lora-zero-shot", tmp_path / "fu", dry_run=True)
    summary = run_protocol("fu-lora-zero-shot", tmp_path / "fu", dry_run=True, overrides={"synthetic": "syn/"})
    assert len(summary["rows"]) == 4 * 5  # variants x backbones, nothing trained
    with pytest.raises(FetalBenchError, match="resize 'letterbox'"):
        run_protocol("fu-lora-zero-shot", tmp_path / "fu", dry_run=True,
                     overrides={"synthetic": "syn/", "resize": "letterbox"})


@pytest.mark.parametrize(("name", "expected_rows"), [
    ("fu-lora-zero-shot", 2), ("tian-pretrain-finetune", 3), ("synthetic-ratio-curve", 3), ("sam-few-shot", 4),
])
def test_protocol_runs_end_to_end_at_tiny_scale(name, expected_rows, cache, tmp_path):
    out = tmp_path / name
    summary = run_protocol(name, out, overrides={"profile": "tiny"})
    rows = summary["rows"]
    assert len(rows) == expected_rows
    assert (out / "summary.json").is_file() and (out / "summary.csv").is_file()
    assert json.loads((out / "protocol_config.json").read_text())["config"]["_source"]["profile"] == "tiny"
    assert len(list((out / "results").glob("*.json"))) == expected_rows
    if name == "sam-few-shot":
        assert {row["arm"] for row in rows} == {"real", "real+synthetic"}
        assert all(0 <= row["box_dice"] <= 1 for row in rows)
    elif name == "synthetic-ratio-curve":
        assert [row["synthetic_share"] for row in rows] == [0.0, 0.5, 1.0] and (out / "curve.png").is_file()
    elif name == "tian-pretrain-finetune":
        assert [row["training_data"] for row in rows] == ["real", "synthetic", "real"]
    else:
        assert {row["variant"] for row in rows} == {"ES", "HB+DA"}
        assert [row["training_data"] for row in rows] == ["real", "hybrid"]
        # One resize policy and the paper's (absent) normalisation, recorded in every row.
        assert {(row["resize"], row["normalize"]) for row in rows} == {("stretch to 32x32", "none")}
    # Running again resumes: nothing is retrained or re-scored.
    again = run_protocol(name, out, overrides={"profile": "tiny"})
    assert [row["run"] for row in again["rows"]] == [row["run"] for row in rows]
