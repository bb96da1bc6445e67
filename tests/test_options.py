"""One source of truth for options: the flags of `pof pretrain` and `pof post-train` are their
configs' fields, no more and no less, and a config turned into flags and parsed back is itself."""

import argparse
import dataclasses

import pytest

from pof.cli import build_parser, config_argv, post_train_config, pretrain_config
from pof.config import PoFConfig, PostTrainConfig, PretrainConfig, TrackConfig
from pof.options import cli_fields

# Flags that say where and how a job runs, not what it computes: no config field.
JOB_FLAGS = {"out", "resume", "overwrite", "quiet"}
# Flags parsed by hand into a field declared cli=False (dest -> field).
HAND_FLAGS = {
    "arch_arg": "arch_args",
    "key_map": "key_map",
    "checkpoint": "checkpoint",
    "classes": "data_options",
    "label_column": "data_options",
    "mean": "data_options",
    "std": "data_options",
    "test_fraction": "data_options",
    "split_seed": "data_options",
}
# command -> (its config, {field holding a nested config: that config's class})
COMMANDS = {
    "pretrain": (PretrainConfig, {"tracking": TrackConfig}),
    "post-train": (PostTrainConfig, {"pof": PoFConfig, "tracking": TrackConfig}),
}


def _subparser(name: str) -> argparse.ArgumentParser:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


def _flag_dests(name: str) -> set[str]:
    return {a.dest for a in _subparser(name)._actions if not isinstance(a, argparse._HelpAction)}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_is_a_field_and_every_field_a_flag(command):
    config, nested = COMMANDS[command]
    dests = _flag_dests(command)
    flags = dests - JOB_FLAGS
    generated = {f.name for cls in (config, *nested.values()) for f in cli_fields(cls)}
    by_hand = {f.name for f in dataclasses.fields(config) if not f.metadata["cli"]} - set(nested)
    # a flag without a field
    assert flags - generated - HAND_FLAGS.keys() == set()
    # a field without a flag: generated ones by name, hand-parsed ones through their flags
    assert generated - flags == set()
    assert by_hand == {HAND_FLAGS[d] for d in flags & HAND_FLAGS.keys()}
    assert dests >= JOB_FLAGS


def test_every_field_is_declared_with_its_help_text():
    for cls in (PretrainConfig, PostTrainConfig, PoFConfig, TrackConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_every_field_help_text(command, capsys):
    config, nested = COMMANDS[command]
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    shown = _squeezed(capsys.readouterr().out)  # argparse rewraps (and splits at hyphens)
    for cls in (config, *nested.values()):
        for f in cli_fields(cls):
            assert _squeezed(f.metadata["help"]) in shown, f.name
    for dest, name in HAND_FLAGS.items():
        field = next((f for f in dataclasses.fields(config) if f.name == name), None)
        if field is not None and name != "data_options" and dest in _flag_dests(command):
            assert _squeezed(field.metadata["help"]) in shown, name


def _squeezed(text: str) -> str:
    return "".join(text.split())


def _parsed(cfg):
    args = build_parser().parse_args([*config_argv(cfg), "--out", "x"])
    return (pretrain_config if args.command == "pretrain" else post_train_config)(args)


PRETRAIN = [
    PretrainConfig(),
    PretrainConfig(
        model="mlp",
        arch_args={"hidden": [16, 8]},
        dataset="moons",
        data_root="/tmp/data",
        epochs=3,
        batch_size=7,
        optimizer="sam",
        lr=0.125,
        momentum=0.0,
        nesterov=False,
        weight_decay=0.0,
        schedule="cosine",
        milestones=[2, 1],
        lr_decay=0.5,
        rho=0.1,
        adaptive=True,
        augment="none",
        seed=9,
        device="cpu",
        save_every=2,
        tracking=TrackConfig(track=True, track_samples=32),
    ),
    PretrainConfig(
        dataset="csv:a.csv,b.csv",
        data_options={"classes": ["b", "a"], "label_column": "y", "mean": "auto", "std": (0.5,)},
        svhn_extra=True,
    ),
]
POST_TRAIN = [
    PostTrainConfig(checkpoint="runs/a/checkpoints/final.safetensors"),
    PostTrainConfig(
        checkpoint="model.pt",
        dataset="digits",
        arch="cnn-small",
        arch_args={"width": 4},
        classifier="head.fc",
        key_map=["module.=", "net.=body."],
        method="random-direction",
        epochs=2,
        batch_size=32,
        lr=1e-3,
        momentum=0.5,
        nesterov=False,
        weight_decay=1e-5,
        rho=0.2,
        pof=PoFConfig(
            weak_batch_size=64,
            line_search_init_lr=0.5,
            line_search_max_lr=50.0,
            num_partitions=8,
            gamma_max=1.5,
            weak_bn_mode="eval",
            rejection_cap=1e3,
        ),
        augment="crop=4,flip",
        drop_last=True,
        sync_bn=True,
        seed=3,
        device="cpu",
        save_every=1,
        tracking=TrackConfig(track=True, track_every=5, track_samples=64, track_probes=3),
    ),
]


@pytest.mark.parametrize("cfg", PRETRAIN + POST_TRAIN, ids=lambda c: type(c).__name__)
def test_a_config_turned_into_flags_parses_back_to_itself(cfg):
    back = _parsed(cfg)
    # the CLI names every data option, None where not given: the same as leaving it out
    assert {k: v for k, v in back.data_options.items() if v is not None} == cfg.data_options
    assert dataclasses.replace(back, data_options=cfg.data_options) == cfg


def test_the_defaults_need_no_flags():
    assert config_argv(PretrainConfig()) == ["pretrain"]
    assert config_argv(PostTrainConfig(checkpoint="c.safetensors")) == [
        "post-train",
        "c.safetensors",
    ]
