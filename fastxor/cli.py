"""``fastxor`` command line: train a batch of networks and print the statistics."""
import argparse
import sys
import time

from . import config
from .data import boolean_function


def _train(args):
    from .train import train

    X, y = boolean_function(args.function)
    t0 = time.perf_counter()
    r = train(
        args.networks, epochs=args.epochs, lr=args.lr, hidden=args.hidden, seed=args.seed,
        init_scale=args.init_scale, X=X, y=y, dtype=args.dtype, backend=args.backend,
        record_every=args.record_every,
    )
    dt = time.perf_counter() - t0
    print(f"function {args.function} (targets {''.join(str(int(v)) for v in y)})")
    print(r.summary())
    print(f"time: {dt:.2f} s including compilation, "
          f"{args.networks * args.epochs / dt:.3g} network-epochs/s")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastxor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train N networks and print success statistics")
    t.add_argument("--networks", type=int, default=100_000, help="number of networks (seeds)")
    t.add_argument("--epochs", type=int, default=100_000)
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--hidden", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--init-scale", type=float, default=1.0)
    t.add_argument("--dtype", default="float32", choices=sorted(config.DTYPES))
    t.add_argument("--backend", default="auto", choices=config.BACKENDS)
    t.add_argument("--record-every", type=int, default=0)
    t.add_argument("--function", default="xor",
                   help="boolean function name (xor, and, or, nand, ...) or truth table like 0110")
    args = parser.parse_args(argv)
    try:
        return _train(args)
    except (ValueError, TypeError, MemoryError, ImportError, NotImplementedError) as exc:
        print(f"fastxor: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
