"""numpy / torch oracle for test/tensors/float16.test.ts (run with Debian's /usr/bin/python3).

Reads little-endian float32 values from argv[1]; writes to argv[2], one after the other:
numpy float16 bits, torch float16 bits, torch bfloat16 bits (2 bytes per value each), then numpy's
float16 -> float32 widening of all 65536 float16 bit patterns (4 bytes each).
"""
import sys

import numpy as np
import torch

x = np.fromfile(sys.argv[1], dtype="<f4")
t = torch.from_numpy(x.copy())
parts = [
    x.astype(np.float16).view("<u2"),
    t.half().numpy().view("<u2"),
    t.bfloat16().view(torch.int16).numpy().view("<u2"),
    np.arange(65536, dtype="<u2").view(np.float16).astype(np.float32).view("<u4"),
]
with open(sys.argv[2], "wb") as f:
    for p in parts:
        f.write(np.ascontiguousarray(p).tobytes())
