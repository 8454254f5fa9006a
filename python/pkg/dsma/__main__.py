"""``python -m dsma run EXPERIMENT.yaml``: an experiment run in this process through the same entry
point as the ``dsma`` binary; prints the paper's table. ``python -m dsma plugins`` lists plugins."""

import argparse
import sys

from . import plugins, run


def _shard(text):
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    return i, n


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dsma", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train every row of an experiment file and print its table")
    r.add_argument("experiment", help="experiment file (YAML)")
    r.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.stage1.epochs=2")
    r.add_argument("--out", help="output folder (default runs/<name>)")
    r.add_argument("--cache", help="shared root (default: cache/ beside the output folder)")
    r.add_argument("--resume", action="store_true", help="continue runs that stopped")
    r.add_argument("--only", action="append", default=[], help="only the row with this label")
    r.add_argument("--shard", type=_shard, help="only every N-th run starting at I (I/N)")
    r.add_argument("--plugin", action="append", default=[], help="plugin file: .so or .py")
    r.add_argument("--quiet", action="store_true", help="no progress lines")
    p = sub.add_parser("plugins", help="list registered plugins")
    p.add_argument("--plugin", action="append", default=[], help="plugin file: .so or .py")
    a = parser.parse_args(argv)
    if a.command == "plugins":
        for info in plugins(a.plugin):
            print(f"{info['name']:<22} {info['kind']:<22} {info['source']:<10} {info['description']}")
        return 0
    outcome = run(a.experiment, a.overrides, out=a.out, cache=a.cache, resume=a.resume,
                  only=a.only, shard=a.shard, plugins=a.plugin, progress=not a.quiet)
    print(f"\n{outcome['name']} ({len(outcome['results'])} run(s), {outcome['seconds']:.0f} s); "
          f"runs in {outcome['out']}\n")
    print(outcome["table"], end="")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001  (dsma's errors carry their whole message)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
