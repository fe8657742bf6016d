"""``fastxor map lr | basin | zoom``: trainability maps from the command line
(``fastxor.maps``), one network per cell, saved as .npz and drawn as PNG."""
import argparse
import sys

from . import config, options

#: The train options a map sets itself (its axes, its start, its own defaults) or has no use for.
_OWN = ("networks", "epochs", "lr", "lr_output", "dtype", "seed", "init", "init_scale", "record_every")
#: The train options a map passes through, from the option table (basin maps add lr and lr_output).
_TRAIN = tuple(o.name for o in options.TRAIN if o.name not in _OWN)


def _pair(text):
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two comma-separated numbers like 0.01,100, got {text!r}") from None
    return a, b


def _resolution(text):
    try:
        r = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected R or RX,RY (integers), got {text!r}") from None
    if len(r) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected R or RX,RY, got {text!r}")
    return r[0] if len(r) == 1 else tuple(r)


def _extent(text):
    try:
        v = [float(t) for t in text.split(",")]
    except ValueError:
        v = []
    if len(v) == 1:
        return v[0]
    if len(v) == 4:
        return (v[0], v[1]), (v[2], v[3])
    raise argparse.ArgumentTypeError(f"expected E (a square [-E, E]^2) or XLO,XHI,YLO,YHI, got {text!r}")


def add_parser(sub, option_argument):
    """The ``map`` subcommand on ``sub`` (``option_argument``: cli's, for the
    train options from the option table)."""
    m = sub.add_parser("map", help="a trainability map: one network per cell of a 2-D grid of learning rates "
                                   "or initial weights")
    kinds = m.add_subparsers(dest="map_kind", required=True)
    lr = kinds.add_parser("lr", help="hidden-layer lr x output-layer lr, every cell from the same start")
    lr.add_argument("--hidden-lr", type=_pair, default=(1e-2, 1e2), metavar="LO,HI",
                    help="x axis: the hidden layer's rate (default 0.01,100)")
    lr.add_argument("--output-lr", type=_pair, default=(1e-2, 1e2), metavar="LO,HI",
                    help="y axis: the output layer's rate (default 0.01,100)")
    lr.add_argument("--linear-axes", action="store_true", help="evenly spaced axes (default: logarithmic)")
    basin = kinds.add_parser("basin", help="a plane through initial-weight space around one network "
                                           "(Kolen & Pollack)")
    basin.add_argument("--directions", default="W1[0,0],W1[1,1]",
                       help="two parameters, e.g. 'W1[0,0],W2[0,1]' (W1[j,i], b1[j], W2[0,j], b2), or 'random' "
                            "(default W1[0,0],W1[1,1])")
    basin.add_argument("--extent", type=_extent, default=1.0, metavar="E|XLO,XHI,YLO,YHI",
                       help="the offsets along the two directions (default 1: [-1, 1]^2)")
    basin.add_argument("--direction-seed", type=int, default=0, help="the random directions' seed")
    basin.add_argument("--filter-normalize", action="store_true",
                       help="random directions rescaled per neuron to the centre's norms (Li et al. 2018)")
    for name in ("lr", "lr_output"):
        option_argument(basin, name, lists=False)
    for p in (lr, basin):
        p.add_argument("--resolution", type=_resolution, default=256, metavar="R|RX,RY",
                       help="cells per axis (default 256)")
        p.add_argument("--epochs", type=int, default=1000, help="epochs per cell (default 1000)")
        p.add_argument("--init", default="philox", choices=("philox", "torch"),
                       help="the start (centre) network's init (default philox)")
        p.add_argument("--seed", type=int, default=0, help="its seed (default 0)")
        p.add_argument("--index", type=int, default=0, help="its index among the seed's networks (default 0)")
        for name in _TRAIN:
            option_argument(p, name, lists=False)
        _shared(p)
    zoom = kinds.add_parser("zoom", help="a saved map again, zoomed around a point")
    zoom.add_argument("path", help="a map .npz (fastxor map ... --out)")
    zoom.add_argument("--center", type=_pair, required=True, metavar="X,Y", help="the new centre, in axis units")
    zoom.add_argument("--factor", type=float, required=True, help="how many times narrower each axis gets")
    zoom.add_argument("--resolution", type=_resolution, default=None, metavar="R|RX,RY",
                      help="cells per axis (default: the saved map's)")
    _shared(zoom)


def _shared(p):
    p.add_argument("--dtype", default=None, choices=sorted(config.DTYPES),
                   help="training dtype (default float64: zoomed rates differ beyond float32's digits)")
    p.add_argument("--backend", default="auto", choices=config.BACKENDS)
    p.add_argument("--criterion", default=None, choices=("solved", "finite", "converged"),
                   help="trainable means solved, finite (never diverged) or converged (finite, final loss below "
                        "the start's; default for --output linear)")
    p.add_argument("--out", help="save the map (.npz; fastxor.maps.Map.load reads it)")
    p.add_argument("--plot", help="draw the map (.png)")
    p.add_argument("--progress", default="auto", choices=("auto", "on", "off"),
                   help="progress bar on stderr (auto: on a terminal, for maps over a second)")
    p.add_argument("--force", action="store_true", help="overwrite existing --out / --plot files")


def run(args, _progress):
    """``fastxor map``: train the map, print its summary, save and draw it
    (``_progress``: cli's progress bar for ``args``)."""
    from .maps import Map, basin_map, lr_map
    from .outputs import check_path, save_safely

    for path, suffix, flag in ((args.out, ".npz", "--out"), (args.plot, ".png", "--plot")):
        if path:
            check_path(path, suffix, flag, force=args.force)
    if args.plot:
        from .plots import _pyplot

        _pyplot()  # no matplotlib: said before the training, not after
    if args.map_kind == "zoom":
        old = Map.load(args.path)
        cells = (args.resolution if isinstance(args.resolution, tuple) else (args.resolution,) * 2
                 if args.resolution else old.spec["resolution"])
        if args.dtype or args.criterion:
            raise ValueError("map zoom keeps the saved map's dtype and criterion; drop --dtype/--criterion")
        bar = _bar(args, cells, old.spec["epochs"], _progress)
        m = old.zoom(args.center, args.factor, args.resolution, progress=bar)
    else:
        train = {k: getattr(args, k) for k in _TRAIN if getattr(args, k) is not None}
        if "betas" in train:
            train["betas"] = tuple(train["betas"])
        common = dict(resolution=args.resolution, epochs=args.epochs, seed=args.seed, index=args.index,
                      criterion=args.criterion, dtype=args.dtype or "float64", backend=args.backend, **train)
        cells = args.resolution if isinstance(args.resolution, tuple) else (args.resolution,) * 2
        common["progress"] = _bar(args, cells, args.epochs, _progress)
        if args.map_kind == "lr":
            m = lr_map(args.hidden_lr, args.output_lr, init=args.init, log=not args.linear_axes, **common)
        else:
            directions = args.directions if args.directions == "random" else _names(args.directions)
            extra = {k: getattr(args, k) for k in ("lr", "lr_output") if getattr(args, k) is not None}
            m = basin_map(args.init, directions, args.extent, direction_seed=args.direction_seed,
                          filter_normalize=args.filter_normalize, **extra, **common)
    print(m.summary())
    if args.out:
        where, warning = save_safely(m.save, args.out, replace=args.force)
        if warning:
            print(f"fastxor: warning: {warning}", file=sys.stderr)
        print(f"saved: {where}")
    if args.plot:
        print(f"plot: {m.plot(args.plot)}")
    return 0


def _names(text):
    """'W1[0,0],W1[1,1]' -> ('W1[0,0]', 'W1[1,1]'): split at the commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    if len(parts) != 2:
        raise ValueError(f"--directions must name two parameters like 'W1[0,0],W1[1,1]' or be 'random', got {text!r}")
    return tuple(parts)


def _bar(args, cells, epochs, progress):
    """A progress bar over the map's network-epochs (shown as epochs of all its cells)."""
    n = cells[0] * cells[1]
    bar = progress(args, n)
    if bar is None or epochs == 0:
        return None
    return lambda done, total: bar(done // n, total // n)

