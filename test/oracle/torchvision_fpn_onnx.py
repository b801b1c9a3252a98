"""torchvision ResNet-FPN oracle for test/backbone/user-onnx.test.ts (run with Debian's /usr/bin/python3).

Reads from argv[1] a JSON object: `modelDir` (where to write model.onnx), `width`, `height`, `rgb`
(base64 of the image's H×W×3 uint8 bytes), `mean`, `std` (three numbers each), `sizeDivisible`,
`boxes` (base64 float32 [K, 4], image pixels, x1 y1 x2 y2), `outputSize`, `samplingRatio`.

Builds torchvision's `resnet_fpn_backbone('resnet18', weights=None)` with seeded random weights (no
download), wrapped so that it returns the levels '0'..'3' (the ones `MultiScaleRoIAlign` pools from;
the extra 'pool' level is left out), and exports it with torch.onnx.export (opset 13, dynamic H and W)
to modelDir/model.onnx. Then does what torchvision's detection models do to the image: ToTensor
(/255), Normalize(mean, std), zero padding at the bottom/right to a multiple of `sizeDivisible`
(GeneralizedRCNNTransform.batch_images), runs the model, and pools the boxes with
`MultiScaleRoIAlign(['0', '1', '2', '3'], outputSize, samplingRatio)` given the unpadded image size.
Writes to argv[2]: `pooled` (base64 float32 [K, C, PH, PW]), `shapes` (each level's shape) and `scales`.
"""
import base64
import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import MultiScaleRoIAlign


class Levels(torch.nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        out = self.body(x)
        return tuple(out[k] for k in ["0", "1", "2", "3"])


def main():
    with open(sys.argv[1]) as f:
        a = json.load(f)
    torch.manual_seed(1234)
    body = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5).eval()
    model = Levels(body).eval()
    w, h = a["width"], a["height"]
    rgb = np.frombuffer(base64.b64decode(a["rgb"]), dtype=np.uint8).reshape(h, w, 3)
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255
    mean = torch.tensor(a["mean"], dtype=torch.float32)[:, None, None]
    std = torch.tensor(a["std"], dtype=torch.float32)[:, None, None]
    x = (x - mean) / std
    d = a["sizeDivisible"]
    ph, pw = -(-h // d) * d, -(-w // d) * d
    batch = x.new_zeros((1, 3, ph, pw))
    batch[0, :, :h, :w] = x
    os.makedirs(a["modelDir"], exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model,
            batch,
            os.path.join(a["modelDir"], "model.onnx"),
            input_names=["image"],
            output_names=["p2", "p3", "p4", "p5"],
            dynamic_axes={"image": {2: "H", 3: "W"}},
            opset_version=13,
        )
        levels = model(batch)
        feats = OrderedDict((k, v) for k, v in zip(["0", "1", "2", "3"], levels))
        boxes = torch.from_numpy(np.frombuffer(base64.b64decode(a["boxes"]), dtype="<f4").copy().reshape(-1, 4))
        pooler = MultiScaleRoIAlign(["0", "1", "2", "3"], a["outputSize"], a["samplingRatio"])
        pooled = pooler(feats, [boxes], [(h, w)])
    with open(sys.argv[2], "w") as f:
        json.dump(
            {
                "pooled": base64.b64encode(pooled.contiguous().numpy().astype("<f4").tobytes()).decode(),
                "shape": list(pooled.shape),
                "shapes": [list(v.shape) for v in levels],
                "scales": pooler.scales,
            },
            f,
        )


main()
