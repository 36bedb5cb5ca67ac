"""torchrun (torch.distributed.run) as it is, with one fix where it needs one:

  python3 -m medsyn_pretrainer_torch.torchrun [torchrun's arguments]

torch 1.13 (Debian's python3-torch) reads --redirects / --tee by iterating its `Std` IntFlag, and
on Python 3.11 iteration no longer yields the zero member `Std.NONE`, so the default "0" parses
to None and every launch fails. Here such values parse with `Std(int)`; a torch whose own parser
works (the PyTorch images' torch 2.x) is left untouched.
"""
import re

from torch.distributed.elastic.multiprocessing import Std
from torch.distributed.run import main


def _parse_std(value):
    if re.fullmatch(r"\d", value):
        return Std(int(value))
    return {int(rank): Std(int(v)) for rank, v in (pair.split(":") for pair in value.split(","))}


if Std.from_str("0") is None:
    Std.from_str = staticmethod(_parse_std)

if __name__ == "__main__":
    main()
