"""`llmkit env`: versions and hardware, to paste into bug reports."""

from __future__ import annotations

import json

from llmkit.config import environment_info


def main(argv: list[str]) -> int:
    import torch

    info = environment_info()
    info["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
    info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    print(json.dumps(info, indent=2))
    return 0
