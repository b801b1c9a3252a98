"""The built-in network (and its pyramid) in PyTorch, an engine independent of tfjs, for
test/backbone/pyramid.test.ts. Usage: python3 torch_network.py in.json out.json

in.json: {"nodes": [...NetworkNode], "weights": {name: {"kernel": b64 f32 HWIO, "shape": [kh, kw, i, o],
"bias": b64 f32}}, "rgb": b64 uint8 [H, W, 3], "width": W, "height": H, "outputs": [names]}
out.json: {"outputs": [{"shape": [1, C, H, W], "data": b64 f32 NCHW}]}

Written from the node kinds' definitions, not from roiserve's code:
- conv: TensorFlow 'same' padding (total pad max((ceil(n/s) - 1)·s + k - n, 0), the odd one at the
  bottom/right), bias, ReLU unless relu is false;
- maxpool: the same padding with -inf (TF ignores padded cells);
- concat along channels; add;
- upsample: torchvision FPN's top-down step, F.interpolate(x, size=like's H, W, mode="nearest").
"""
import base64
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F


def f32(s):
    return np.frombuffer(base64.b64decode(s), "<f4")


def same_pad(n, k, s):
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    h, w = spec["height"], spec["width"]
    rgb = np.frombuffer(base64.b64decode(spec["rgb"]), np.uint8).reshape(h, w, 3)
    x = (rgb.astype(np.float64) / 255.0 - 0.5).astype(np.float32)
    values = {"input": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]}
    for node in spec["nodes"]:
        kind = node["type"]
        if kind == "conv":
            wt = spec["weights"][node["name"]]
            kernel = torch.from_numpy(f32(wt["kernel"]).reshape(wt["shape"]).copy()).permute(3, 2, 0, 1)
            bias = torch.from_numpy(f32(wt["bias"]).copy())
            src = values[node["input"]]
            k, s = node["kernel"], node["stride"]
            top, bottom = same_pad(src.shape[2], k, s)
            left, right = same_pad(src.shape[3], k, s)
            out = F.conv2d(F.pad(src, (left, right, top, bottom)), kernel.contiguous(), bias, stride=s)
            values[node["name"]] = out if node.get("relu") is False else F.relu(out)
        elif kind == "maxpool":
            src = values[node["input"]]
            k, s = node["pool"], node["stride"]
            top, bottom = same_pad(src.shape[2], k, s)
            left, right = same_pad(src.shape[3], k, s)
            padded = F.pad(src, (left, right, top, bottom), value=-math.inf)
            values[node["name"]] = F.max_pool2d(padded, k, s)
        elif kind == "concat":
            values[node["name"]] = torch.cat([values[i] for i in node["inputs"]], 1)
        elif kind == "add":
            out = values[node["inputs"][0]]
            for i in node["inputs"][1:]:
                out = out + values[i]
            values[node["name"]] = out
        elif kind == "upsample":
            like = values[node["like"]]
            values[node["name"]] = F.interpolate(values[node["input"]], size=like.shape[-2:], mode="nearest")
        else:
            raise ValueError("unknown node kind " + kind)
    outputs = []
    for name in spec["outputs"]:
        t = values[name].detach().numpy().astype("<f4")
        outputs.append({"shape": list(t.shape), "data": base64.b64encode(t.tobytes()).decode()})
    with open(sys.argv[2], "w") as f:
        json.dump({"outputs": outputs}, f)


if __name__ == "__main__":
    main()
