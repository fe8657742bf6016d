"""The option table (fastxor.options): every place an option's default is
used takes it from there, and torch.optim's own defaults agree with it."""
import inspect

import numpy as np
import pytest

import fastxor
from fastxor import cli, options, stats
from fastxor.state import Recipe
from fastxor.torch_compat import make_optimizer


def _defaults(fn):
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def test_train_sweep_recipe_and_torch_compat_take_the_table_s_defaults():
    train, sweep = _defaults(fastxor.train), _defaults(fastxor.sweep)
    for o in options.TRAIN:
        if o.name in ("networks", "function"):
            continue  # train's n_networks is required, its data XOR when neither function nor X is given
        assert train[o.name] == o.default, o.name
        if o.name in sweep:
            axis = isinstance(sweep[o.name], tuple) and o.name != "betas"
            assert sweep[o.name] == ((o.default,) if axis else o.default), o.name
    r = Recipe(2, np.dtype(np.float32))
    assert (r.betas, r.eps) == (options.DEFAULTS["betas"], options.DEFAULTS["eps"])
    mk = _defaults(make_optimizer)
    for k in ("optimizer", "lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps"):
        assert mk[k] == options.DEFAULTS[k], k
    assert set(stats.RANGES) | set(stats.HEADER) >= set(options.RECIPE)


def test_the_command_line_is_built_from_the_table():
    """train's options default to None on the parser ("not given", for
    --resume) and take the table's defaults after; sweep's defaults are the
    table's; each option's help states what it allows."""
    parser = cli.parser()
    train_args = parser.parse_args(["train"])
    sweep_args = parser.parse_args(["sweep"])
    assert set(cli.RUN_SETTINGS) == {o.name for o in options.TRAIN} - {"epochs"}
    assert cli.TRAIN_DEFAULTS == {k: v for k, v in options.DEFAULTS.items() if k != "epochs"}
    assert train_args.epochs == sweep_args.epochs == options.DEFAULTS["epochs"]
    for name in cli.RUN_SETTINGS:
        assert getattr(train_args, name) is None, name
    for name in options.RECIPE:
        value = getattr(sweep_args, name)
        default = options.DEFAULTS[name]
        assert value in (default, [default], list(default) if isinstance(default, tuple) else None), name
    train_help = [a for a in parser._subparsers._group_actions[0].choices["train"]._actions]
    helps = {a.dest: a.help for a in train_help}
    for o in options.TRAIN:
        assert o.allowed in helps[o.name], o.name


def test_torch_s_own_defaults_agree_with_the_table():
    """Adam's betas and eps and SGD's momentum, dampening, nesterov as
    torch.optim defines them (fastxor's weight decay is 0 for AdamW too, as
    the README says)."""
    torch = pytest.importorskip("torch")
    p = [torch.nn.Parameter(torch.zeros(1))]
    adam, sgd = torch.optim.Adam(p, lr=0.1).defaults, torch.optim.SGD(p, lr=0.1).defaults
    assert tuple(adam["betas"]) == options.DEFAULTS["betas"] and adam["eps"] == options.DEFAULTS["eps"]
    for k in ("momentum", "dampening", "nesterov", "weight_decay"):
        assert sgd[k] == options.DEFAULTS[k], k
