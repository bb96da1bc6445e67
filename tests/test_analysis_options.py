"""The analysis configs are the one source of the analysis CLI's options: every flag of a command is
a field of its config or one of a short list of flags that are not options of a computation, every
field has its flag, and a config turned into flags (what the app does) parses back to itself."""

import argparse
import dataclasses

import pytest

from analysis.cli import CONFIGS, build_parser, config_of
from analysis.configs import (
    HessianConfig,
    InterpolationConfig,
    LandscapeConfig,
    LayersConfig,
    ReportConfig,
    SharpnessConfig,
    TrackRunConfig,
)
from pof.cli import add_data_args, add_model_args
from pof.options import cli_fields, flag_name, to_argv

# inputs, outputs and how a command talks: not options of the computation
NOT_CONFIG = {
    "--help",
    "--out",
    "--quiet",
    "--json",
    "--compare",
    "--directions",
    "--towards",
    "--part",
    "--label",
}


def _pof_flags() -> set[str]:
    """The flags pof's own helpers add (which data, which model): pof's concern, checked there."""
    p = argparse.ArgumentParser(add_help=False)
    add_data_args(p, required=False)
    add_model_args(p)
    return {o for a in p._actions for o in a.option_strings}


def _commands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def mismatch(parser: argparse.ArgumentParser, cls) -> tuple[set, set]:
    """(flags without a field, fields without a flag) of a command's parser and its config."""
    flags = {o: a.dest for a in parser._actions for o in a.option_strings if o.startswith("--")}
    fields = {flag_name(f): f.name for f in dataclasses.fields(cls)}
    negated = {"--no-" + flag_name(f)[2:] for f in cli_fields(cls) if f.type in (bool, "bool")}
    without_field = set(flags) - set(fields) - negated - NOT_CONFIG - _pof_flags()
    without_flag = {flag for flag, name in fields.items() if flags.get(flag) != name}
    return without_field, without_flag


@pytest.mark.parametrize("command", list(CONFIGS))
def test_every_flag_is_a_field_and_every_field_a_flag(command):
    assert mismatch(_commands()[command], CONFIGS[command]) == (set(), set())


def test_the_check_finds_a_stray_flag_and_a_missing_one():
    parser = _commands()["sharpness"]
    parser.add_argument("--ghost", type=int)
    assert mismatch(parser, SharpnessConfig)[0] == {"--ghost"}
    partial = argparse.ArgumentParser()
    partial.add_argument("--rho", type=float)
    assert "--sigma" in mismatch(partial, SharpnessConfig)[1]


# a value other than the default for every field, so that every flag is exercised
EXAMPLES = {
    "hessian": (
        ["a.safetensors"],
        HessianConfig(
            split="test",
            samples=300,
            batch_size=100,
            seed=3,
            device="cpu",
            top_k=3,
            tol=1e-3,
            trace=True,
            probes=20,
            per_layer=True,
            density=True,
            density_steps=40,
            density_runs=2,
            cross_check=True,
        ),
    ),
    "layers": (
        ["a.safetensors", "b.safetensors"],
        LayersConfig(
            split="test",
            samples=200,
            batch_size=50,
            seed=1,
            device="cpu",
            probes=12,
            tol=1e-2,
            traces_only=True,
            max_steps=20,
        ),
    ),
    "landscape": (
        ["a.safetensors"],
        LandscapeConfig(
            split="train",
            samples=500,
            batch_size=64,
            seed=1,
            device="cpu",
            dims=2,
            range=(-2.0, 0.5),
            steps=11,
            normalization="layer",
            include_bias_bn=True,
            layers=["features", "classifier"],
        ),
    ),
    "interpolate": (
        ["a.safetensors", "b.safetensors"],
        InterpolationConfig(
            split="train",
            samples=100,
            batch_size=10,
            seed=2,
            device="cpu",
            range=(0.0, 1.0),
            steps=5,
        ),
    ),
    "sharpness": (
        ["a.safetensors"],
        SharpnessConfig(
            split="test",
            samples=100,
            batch_size=20,
            seed=4,
            device="cpu",
            rho=0.1,
            steps=3,
            sigma=0.02,
            noise_samples=7,
        ),
    ),
    "report": (
        ["runs/x"],
        ReportConfig(
            samples=200,
            top_k=3,
            probes=10,
            density_steps=20,
            eval_samples=300,
            steps_1d=11,
            steps_2d=5,
            span=0.5,
            layer_tol=1e-3,
            layer_steps=20,
            layer_traces_only=True,
            seed=2,
        ),
    ),
}
EXAMPLES["compare"] = (["a.safetensors"], EXAMPLES["report"][1])
EXAMPLES["track"] = (["runs/a"], TrackRunConfig(samples=64, probes=4, seed=7, device="cpu"))


@pytest.mark.parametrize("command", list(CONFIGS))
def test_to_argv_round_trips(command):
    positional, cfg = EXAMPLES[command]
    default = type(cfg)()
    changed = {
        f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(default, f.name)
    }
    assert changed == {f.name for f in dataclasses.fields(cfg)}  # the example moves every field
    hand = ["--range", *map(repr, cfg.range)] if hasattr(cfg, "range") else []  # cli=False
    args = build_parser().parse_args([command, *positional, *to_argv(cfg), *hand])
    assert config_of(args) == cfg
    assert to_argv(default) == []
    assert config_of(build_parser().parse_args([command, *positional])) == default
