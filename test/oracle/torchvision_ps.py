"""torchvision oracle for test/oracle/ps_roi.oracle.test.ts (run with Debian's /usr/bin/python3).

Reads a JSON list of cases from argv[1]; each case has `op` ("ps_align" or "ps_pool"), `shape`
[N, C, H, W], `features` and `boxes` (base64 of little-endian float32, NCHW and [K, 5]), `outputSize`
[PH, PW], `spatialScale` and, for ps_align, `samplingRatio`. Writes to argv[2] a JSON object with
torchvision's version and, per case, the output [K, C/(PH*PW), PH, PW] as base64 float32 (NaN kept).
"""
import base64
import json
import sys

import numpy as np
import torch
import torchvision
from torchvision.ops import ps_roi_align, ps_roi_pool


def f32(b64, shape):
    return torch.from_numpy(np.frombuffer(base64.b64decode(b64), dtype="<f4").copy().reshape(shape))


def main():
    torch.set_num_threads(1)
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    outputs = []
    for c in cases:
        x = f32(c["features"], c["shape"])
        boxes = f32(c["boxes"], (-1, 5))
        ph, pw = c["outputSize"]
        with torch.no_grad():
            if c["op"] == "ps_align":
                y = ps_roi_align(x, boxes, (ph, pw), float(c["spatialScale"]), int(c["samplingRatio"]))
            else:
                y = ps_roi_pool(x, boxes, (ph, pw), float(c["spatialScale"]))
        assert y.dtype == torch.float32
        outputs.append(base64.b64encode(y.contiguous().numpy().astype("<f4").tobytes()).decode())
    with open(sys.argv[2], "w") as f:
        json.dump({"torchvision": torchvision.__version__, "torch": torch.__version__, "outputs": outputs}, f)


if __name__ == "__main__":
    main()
