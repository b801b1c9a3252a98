"""torchvision oracle for test/oracle/multiscale.oracle.test.ts (run with Debian's /usr/bin/python3).

Reads from argv[1] a JSON object {`cases`, `sweep`}. `sweep` is base64 float32 [M, 4] boxes whose levels
only are wanted (LevelMapper with k_min 0, k_max 9, and detectron2's rule). Each case has `imageSize` [H, W], `levels` (a list of
{`shape` [N, C, H, W], `features`: base64 of little-endian float32 NCHW}, finest first), `boxes`
(base64 float32 [K, 5], rows grouped by image: all of image 0, then image 1, ...), `outputSize`
[PH, PW], `samplingRatio`, and `aligns`: a list of plain roi_align runs {`level`, `boxes`,
`spatialScale`, `aligned`}. Writes to argv[2] a JSON object with torch's and torchvision's versions
and, per case:
- `multiscale`: torchvision.ops.MultiScaleRoIAlign's output [K, C, PH, PW] (base64 float32);
- `scales`: the scales it inferred from the map and image sizes;
- `levels`: its LevelMapper's level per box, as levels k (map index + k_min);
- `levelsDetectron2`: detectron2's assign_boxes_to_levels on the same boxes (detectron2 is not
  packaged in Debian, so its two lines are transcribed here from detectron2/modeling/poolers.py),
  with detectron2's defaults canonical_box_size 224, canonical_level 4 and the same k_min, k_max;
- `aligns`: torchvision.ops.roi_align's output for each plain run;
and `sweep`: {`torchvision`, `detectron2`}, the levels of the sweep's boxes.
"""
import base64
import json
import sys
from collections import OrderedDict

import numpy as np
import torch
import torchvision
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.poolers import LevelMapper


def f32(b64, shape):
    return torch.from_numpy(np.frombuffer(base64.b64decode(b64), dtype="<f4").copy().reshape(shape))


def enc(t):
    assert t.dtype == torch.float32
    return base64.b64encode(t.contiguous().numpy().astype("<f4").tobytes()).decode()


def detectron2_levels(boxes, min_level, max_level, canonical_box_size=224, canonical_level=4):
    # detectron2/modeling/poolers.py, assign_boxes_to_levels (Boxes.area() = (x2 - x1) * (y2 - y1))
    box_sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    level_assignments = torch.floor(canonical_level + torch.log2(box_sizes / canonical_box_size + 1e-8))
    level_assignments = torch.clamp(level_assignments, min=min_level, max=max_level)
    return level_assignments.to(torch.int64)


def main():
    torch.set_num_threads(1)
    with open(sys.argv[1]) as f:
        request = json.load(f)
    cases = request["cases"]
    sweep_boxes = f32(request["sweep"], (-1, 4))
    with torch.no_grad():
        sweep = {
            "torchvision": LevelMapper(0, 9)([sweep_boxes]).tolist(),
            "detectron2": detectron2_levels(sweep_boxes, 0, 9).tolist(),
        }
    results = []
    for c in cases:
        maps = [f32(lv["features"], lv["shape"]) for lv in c["levels"]]
        n = maps[0].shape[0]
        rois = f32(c["boxes"], (-1, 5))
        # MultiScaleRoIAlign takes one [K_i, 4] tensor per image and concatenates them in that order.
        per_image = [rois[rois[:, 0] == i, 1:] for i in range(n)]
        names = [f"p{i}" for i in range(len(maps))]
        pooler = MultiScaleRoIAlign(names, tuple(c["outputSize"]), int(c["samplingRatio"]))
        x = OrderedDict(zip(names, maps))
        image_shapes = [tuple(c["imageSize"])] * n
        with torch.no_grad():
            y = pooler(x, per_image, image_shapes)
            k_min = pooler.map_levels.k_min
            k_max = pooler.map_levels.k_max
            levels = pooler.map_levels(per_image) + k_min
            d2 = detectron2_levels(torch.cat(per_image), k_min, k_max)
            aligns = []
            for a in c["aligns"]:
                out = roi_align(
                    maps[a["level"]],
                    f32(a["boxes"], (-1, 5)),
                    tuple(c["outputSize"]),
                    float(a["spatialScale"]),
                    int(c["samplingRatio"]),
                    bool(a["aligned"]),
                )
                aligns.append(enc(out))
        results.append(
            {
                "multiscale": enc(y),
                "scales": list(pooler.scales),
                "levels": levels.tolist(),
                "levelsDetectron2": d2.tolist(),
                "aligns": aligns,
            }
        )
    with open(sys.argv[2], "w") as f:
        json.dump(
            {"torchvision": torchvision.__version__, "torch": torch.__version__, "results": results, "sweep": sweep},
            f,
        )


if __name__ == "__main__":
    main()
