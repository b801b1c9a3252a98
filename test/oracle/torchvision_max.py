"""torchvision oracle for RoI Align `max` mode (test/oracle/roi_align_max.oracle.test.ts; Debian's /usr/bin/python3).

torchvision 0.14 has no `max` mode, and ONNX Runtime's `max` is another rule (our `onnx_max`). But the
contract's `max` is "interpolate each sample, then take the largest", and one sample per bin is exactly
what `roi_align(..., sampling_ratio=1)` returns: with an output of `PH*gh x PW*gw` bins, bin
`(ph*gh + iy, pw*gw + ix)` holds the single bilinear sample at
`start + (ph*gh + iy + 0.5) * roi/(PH*gh) = start + ph*bh + (iy + 0.5) * bh/gh`, the contract's point
`(iy, ix)` of bin `(ph, pw)`. A `gh x gw` max-pool of that output is then the contract's `max`. The grid
`gh = samplingRatio > 0 ? samplingRatio : ceil(rh / PH)` is computed here per box, in float32 as
torchvision does; an empty grid (adaptive, zero-size box) gives 0 (the contract).

Reads a JSON list of cases from argv[1]: `shape` [N, C, H, W], `features` and `boxes` (base64 of
little-endian float32, NCHW and [K, 5]), `outputSize` [PH, PW], `spatialScale`, `samplingRatio`,
`aligned`. Writes to argv[2] a JSON object with torchvision's version and, per case, the output
[K, C, PH, PW] as base64 float32.
"""
import base64
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision.ops import roi_align


def f32(b64, shape):
    return torch.from_numpy(np.frombuffer(base64.b64decode(b64), dtype="<f4").copy().reshape(shape))


def grid(box, scale, ph, pw, sampling_ratio, aligned):
    """(gh, gw) for one box: fixed, or ceil(roi / output) with the roi size in float32."""
    if sampling_ratio > 0:
        return sampling_ratio, sampling_ratio
    s = np.float32(scale)
    off = np.float32(0.5 if aligned else 0.0)
    x1, y1, x2, y2 = (np.float32(v) for v in box[1:5])
    rw = np.float32((x2 * s - off) - (x1 * s - off))
    rh = np.float32((y2 * s - off) - (y1 * s - off))
    if not aligned:
        rw = max(rw, np.float32(1))
        rh = max(rh, np.float32(1))
    return math.ceil(np.float32(rh / np.float32(ph))), math.ceil(np.float32(rw / np.float32(pw)))


def main():
    torch.set_num_threads(1)
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    outputs = []
    for c in cases:
        x = f32(c["features"], c["shape"])
        boxes = f32(c["boxes"], (-1, 5))
        ph, pw = c["outputSize"]
        channels = c["shape"][1]
        out = torch.zeros((boxes.shape[0], channels, ph, pw), dtype=torch.float32)
        for k in range(boxes.shape[0]):
            box = boxes[k : k + 1]
            gh, gw = grid(box[0].numpy(), c["spatialScale"], ph, pw, int(c["samplingRatio"]), c["aligned"])
            if gh == 0 or gw == 0:
                continue  # empty grid: 0
            with torch.no_grad():
                samples = roi_align(
                    x, box, (ph * gh, pw * gw), float(c["spatialScale"]), 1, bool(c["aligned"])
                )
                out[k] = F.max_pool2d(samples, (gh, gw), (gh, gw))[0]
        outputs.append(base64.b64encode(out.contiguous().numpy().astype("<f4").tobytes()).decode())
    with open(sys.argv[2], "w") as f:
        json.dump({"torchvision": torchvision.__version__, "torch": torch.__version__, "outputs": outputs}, f)


if __name__ == "__main__":
    main()
