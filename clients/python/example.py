# Run from the repository root with a server up: ROISERVE_URL=http://127.0.0.1:8080 python3 clients/python/example.py
import numpy as np

import roiserve_client as rs  # clients/python/roiserve_client.py (copy it next to your code)

# Your own feature map [N, C, H, W] and boxes [K, 5] (batch index, x1, y1, x2, y2), torchvision's arguments.
x = np.load("fixtures/features.npy")  # float32 [2, 8, 16, 16]
boxes = np.array([[0, 2, 2, 10, 12], [1, 0, 0, 16, 16]], np.float32)
aligned = rs.roi_align(x, boxes, output_size=2, spatial_scale=0.5, sampling_ratio=2)
pooled = rs.roi_pool(x, [boxes[:1, 1:], boxes[1:, 1:]], 2, 0.5)  # per-image [Ki, 4] lists work too
print(aligned.shape, pooled.shape)  # (2, 8, 2, 2) (2, 8, 2, 2)

# An image: the server's backbone, then RoI Align on boxes in image pixels.
out = rs.from_image("fixtures/photo.jpg", [[96, 56, 224, 144], [0, 0, 320, 240]], op="align", aligned=False)
print(out.shape)  # (2, 256, 7, 7)

# The picture of what Pool, Align and Warp keep, lose and gain.
png = rs.diff("fixtures/photo.jpg", [[40, 60, 300, 280]])
print(png[:4])  # b'\x89PNG'

# Errors carry the problem+json fields.
try:
    rs.roi_align(x, boxes, output_size=0)
except rs.RoiserveError as e:
    print(e.status, e.errors[0]["field"])  # 400 outputSize

# With torch installed, tensors in give tensors out (on the input's device):
#   rs.roi_align(torch.from_numpy(x), torch.from_numpy(boxes), 2, 0.5, 2)
