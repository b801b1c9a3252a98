"""roiserve client: torchvision.ops-style RoI operators computed by a roiserve server.

One file, Python standard library + numpy (torch optional). Copy it next to your code.

    import numpy as np
    import roiserve_client as rs

    x = np.random.rand(1, 256, 50, 68).astype(np.float32)
    boxes = np.array([[0, 10, 20, 200, 150]], np.float32)        # [K, 5]: (b, x1, y1, x2, y2)
    out = rs.roi_align(x, boxes, output_size=7, spatial_scale=1 / 16, sampling_ratio=2)  # [K, 256, 7, 7]

``roi_align`` and ``roi_pool`` take torchvision.ops' names, argument order and defaults, so a call
can be swapped for ``torchvision.ops.roi_align`` / ``roi_pool`` (and back). They accept numpy arrays,
and torch tensors when torch is installed, and return the type they got (a tensor on the input's
device, with its dtype). ``boxes`` is a ``[K, 5]`` array/tensor ``(batch_index, x1, y1, x2, y2)`` or a
list of per-image ``[Ki, 4]`` arrays/tensors, as torchvision takes them.

Semantics (checked against torchvision 0.14 by ``test_roiserve_client.py``):
- ``roi_align``: torchvision's, ``aligned=False`` by default (no half-pixel offset, boxes at least
  1×1), ``sampling_ratio=-1`` (adaptive ``ceil(roi / output)`` per axis; the server caps it at 64).
- ``roi_pool``: torchvision's (Caffe / ONNX MaxRoiPool): corners rounded half away from zero, end
  cell inclusive, max per bin, an empty bin gives 0.
- The server computes in float32: float64 inputs are sent as float32 and the result is cast back to
  the input's dtype.

``ps_roi_align`` and ``ps_roi_pool`` (R-FCN) also take torchvision.ops' names, order and defaults;
``multi_scale_roi_align`` is a function form of ``torchvision.ops.MultiScaleRoIAlign`` (FPN):

    pooled = rs.multi_scale_roi_align([p2, p3, p4, p5], boxes, 7, spatial_scale=1 / 4, sampling_ratio=2)

``features`` is the list of pyramid maps, finest first (or a dict, in its order, as torchvision takes
it), each half the scale of the one before; ``spatial_scale`` is the finest map's, a power of two
(torchvision infers the scales from ``image_shapes``; here they are given). Defaults are torchvision's:
``canonical_scale=224``, ``canonical_level=4``, ``aligned=False``; ``return_levels=True`` also returns
each box's level ``k`` (its map's scale is ``2**-k``). These three run over the server's Open Inference
Protocol v2 (``/v2/models/<model>/infer``, binary tensors both ways; ``/v1`` does not run them).
- ``ps_roi_align``: half-pixel offset always on, as torchvision's; a zero-size box with adaptive
  sampling (empty grid) gives 0 where torchvision gives NaN. ``ps_roi_pool``: mean of whole cells.
  The input has ``C_out * PH * PW`` channels; the output is ``[K, C_out, PH, PW]``.

Module-level functions use a default client at ``$ROISERVE_URL`` (default ``http://127.0.0.1:8080``,
key from ``$ROISERVE_API_KEY``); ``Client(url, api_key=None)`` has the same functions as methods.
Errors answered by the server raise :class:`RoiserveError` with the problem+json fields (for the /v2
functions: ``status`` and ``detail``, the protocol's ``{"error": "..."}`` message).
"""

import io
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
import warnings

import numpy as np

__all__ = [
    "Client",
    "RoiserveError",
    "RoiserveWarning",
    "roi_align",
    "roi_pool",
    "roi_warp",
    "ps_roi_align",
    "ps_roi_pool",
    "multi_scale_roi_align",
    "from_image",
    "image_features",
    "diff",
]

DEFAULT_URL = "http://127.0.0.1:8080"


class RoiserveError(Exception):
    """An error answered by the server (RFC 9457 problem+json).

    Attributes: ``status`` (HTTP status), ``type`` (``urn:roiserve:problem:…``), ``title``,
    ``detail`` (names the field and what was expected), ``errors`` (a list of
    ``{"field", "expected", "message"}``, possibly empty), ``instance`` and ``body`` (the parsed body).
    The Open Inference Protocol (``/v2``) answers ``{"error": "<message>"}``: that message is ``detail``,
    the HTTP reason ``title``, and ``type`` / ``instance`` are None.
    """

    def __init__(self, status, body, reason=None):
        body = body if isinstance(body, dict) else {}
        self.status = status
        self.type = body.get("type")
        self.title = body.get("title") or reason
        self.detail = body.get("detail") or body.get("error")
        self.errors = body.get("errors") or []
        self.instance = body.get("instance")
        self.body = body
        super().__init__(f"{status} {self.title or 'error'}: {self.detail or ''}".rstrip(": "))


class RoiserveWarning(UserWarning):
    """A non-fatal warning from the server (``X-Roiserve-Warnings``: e.g. ``box-outside``)."""


def _is_torch(x):
    # torch is optional: never import it just to check a type.
    return type(x).__module__.split(".")[0] == "torch"


def _as_numpy(x):
    """float32 C-contiguous numpy copy of an array, tensor or nested list."""
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def _like(result, like):
    """The result as the input's type: a tensor on its device with its dtype, or a numpy array."""
    if _is_torch(like):
        import torch

        return torch.from_numpy(result).to(device=like.device, dtype=like.dtype)
    dtype = getattr(like, "dtype", None)
    if isinstance(like, np.ndarray) and dtype is not None and np.issubdtype(dtype, np.floating):
        return result.astype(dtype, copy=False)
    return result


def _boxes_rows(boxes, need_batch):
    """``[K, 5]`` rows as JSON-ready lists, from ``[K, 5]`` or a list of per-image ``[Ki, 4]``.

    Coordinates go as float32 values (what torchvision reads from float32 boxes), written as the
    shortest decimal that parses back to the same number; batch indices as ints.
    """
    per_image = (
        isinstance(boxes, (list, tuple))
        and len(boxes) > 0
        and all((b.dim() if _is_torch(b) else np.ndim(b)) == 2 for b in boxes)
    )
    if per_image:
        parts = []
        for i, b in enumerate(boxes):
            a = _as_numpy(b)
            if a.ndim != 2 or a.shape[1] != 4:
                raise ValueError(f"boxes[{i}]: expected a [Ki, 4] array per image, got shape {list(a.shape)}")
            parts.append(np.concatenate([np.full((a.shape[0], 1), i, np.float32), a], axis=1))
        a = np.concatenate(parts, axis=0)
    else:
        a = _as_numpy(boxes)
        if a.size == 0:
            a = a.reshape(0, 5)
        if a.ndim != 2 or a.shape[1] not in ((5,) if need_batch else (4, 5)):
            want = "[K, 5] (batch index, x1, y1, x2, y2)" if need_batch else "[K, 4] or [K, 5]"
            raise ValueError(f"boxes: expected {want} or a list of per-image [Ki, 4], got shape {list(a.shape)}")
    rows = []
    for r in a.tolist():
        if len(r) == 5:
            rows.append([int(r[0])] + [float(v) for v in r[1:]])
        else:
            rows.append([float(v) for v in r])
    return rows


_DATATYPES = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2", "INT64": "<i8", "INT32": "<i4", "UINT8": "u1"}


def _rois(boxes):
    """``[K, 5]`` float32 rows ``(b, x1, y1, x2, y2)`` for a /v2 ``rois`` input."""
    rows = _boxes_rows(boxes, need_batch=True)
    return np.asarray(rows, dtype="<f4").reshape(len(rows), 5)


def _oip_size(size):
    """``output_size`` as /v2 parameters: ``output_size`` (square) or ``output_height`` / ``output_width``."""
    if isinstance(size, list):
        return {"output_height": size[0], "output_width": size[1]}
    return {"output_size": size}


def _npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a, dtype="<f4"), allow_pickle=False)
    return buf.getvalue()


def _size(output_size):
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != 2:
            raise ValueError(f"output_size: expected an int or (h, w), got {output_size!r}")
        return [int(output_size[0]), int(output_size[1])]
    return int(output_size)


def _multipart(fields, files):
    """A multipart/form-data body: ``fields`` {name: text}, ``files`` {name: (filename, bytes)}."""
    boundary = "roiserve-" + uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(str(value).encode("utf-8") + b"\r\n")
    for name, (filename, data) in files.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        out.write(bytes(data) + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _text(v):
    """A multipart field's text: JSON for lists/bools (the server parses JSON text), plain otherwise."""
    if isinstance(v, (list, tuple, dict, bool)):
        return json.dumps(v)
    return str(v)


class Client:
    """A roiserve server at ``url`` (``http://host:port``), with an optional API key."""

    def __init__(self, url=None, api_key=None, timeout=300):
        self.url = (url or os.environ.get("ROISERVE_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    # --- transport -------------------------------------------------------------------------------

    def _post(self, path, fields, files):
        body, ctype = _multipart({k: _text(v) for k, v in fields.items() if v is not None}, files)
        headers = {"Content-Type": ctype}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url + path, data=body, headers=headers, method="POST")
        return self._send(req)

    def _send(self, req):
        return self._exchange(req)[0]

    def _exchange(self, req):
        """The answer's body and headers; an HTTP error raises :class:`RoiserveError`."""
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                data = r.read()
                headers = r.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                problem = json.loads(raw.decode("utf-8"))
            except ValueError:
                problem = {"title": e.reason, "detail": raw.decode("utf-8", "replace")[:500]}
            raise RoiserveError(e.code, problem, e.reason) from None
        header = headers.get("X-Roiserve-Warnings")
        if header:
            level = _caller_level()
            for w in json.loads(header):
                warnings.warn(f"{w.get('code')}: {w.get('message')}", RoiserveWarning, stacklevel=level)
        return data, headers

    def _infer(self, model, inputs, parameters):
        """``POST /v2/models/<model>/infer`` with binary tensors both ways (Triton's extension).

        ``inputs``: ``[(name, little-endian numpy array, datatype)]``. Returns ``{output name: numpy
        array}``. The body is the JSON header, then each input's raw bytes in order; the header's
        length goes in ``Inference-Header-Content-Length`` (what ``tritonclient.http`` sends).
        """
        parameters = {k: v for k, v in parameters.items() if v is not None}
        parameters["binary_data_output"] = True
        header = {"parameters": parameters, "inputs": []}
        blobs = []
        for name, array, datatype in inputs:
            raw = np.ascontiguousarray(array).tobytes()
            header["inputs"].append(
                {"name": name, "shape": list(array.shape), "datatype": datatype,
                 "parameters": {"binary_data_size": len(raw)}}
            )
            blobs.append(raw)
        head = json.dumps(header).encode("utf-8")
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(
            f"{self.url}/v2/models/{model}/infer", data=head + b"".join(blobs), headers=headers, method="POST"
        )
        data, answer_headers = self._exchange(req)
        n = answer_headers.get("Inference-Header-Content-Length")
        n = len(data) if n is None else int(n)
        answer = json.loads(data[:n].decode("utf-8"))
        out, offset = {}, n
        for o in answer.get("outputs", []):
            dtype = np.dtype(_DATATYPES[o["datatype"]])
            size = (o.get("parameters") or {}).get("binary_data_size")
            if size is None:  # sent as JSON numbers (a server that ignored binary_data_output)
                out[o["name"]] = np.asarray(o["data"], dtype=dtype).reshape(o["shape"])
                continue
            out[o["name"]] = np.frombuffer(data, dtype=dtype, count=size // dtype.itemsize, offset=offset).reshape(
                o["shape"]
            ).astype(dtype.newbyteorder("="))
            offset += size
        return out

    def _v2_roi(self, model, features, boxes, parameters):
        """A /v2 RoI model on a ``[N, C, H, W]`` map (``features``) and boxes: its ``pooled`` output."""
        x = _as_numpy(features)
        if x.ndim != 4:
            raise ValueError(f"input: expected a 4-D [N, C, H, W] map, got shape {list(x.shape)}")
        rois = _rois(boxes)
        out = self._infer(model, [("features", x.astype("<f4"), "FP32"), ("rois", rois, "FP32")], parameters)
        return _like(out["pooled"], features)

    def _roi(self, op, features, boxes, output_size, spatial_scale, sampling_ratio=None, aligned=None):
        x = _as_numpy(features)
        if x.ndim != 4:
            raise ValueError(f"input: expected a 4-D [N, C, H, W] map, got shape {list(x.shape)}")
        fields = {
            "spatialScale": float(spatial_scale),
            "boxes": _boxes_rows(boxes, need_batch=True),
            "ops": [op],
            "outputSize": _size(output_size),
            "samplingRatio": None if sampling_ratio is None else int(sampling_ratio),
            "aligned": None if aligned is None else bool(aligned),
            "format": "npy",
        }
        data = self._post("/v1/roi", fields, {"features": ("features.npy", _npy_bytes(x))})
        return _like(np.load(io.BytesIO(data), allow_pickle=False), features)

    # --- torchvision.ops names ---------------------------------------------------------------------

    def roi_align(self, input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
        """torchvision.ops.roi_align: ``[K, C, PH, PW]`` from ``input`` ``[N, C, H, W]``.

        ``sampling_ratio <= 0`` is adaptive (``ceil(roi / output)`` points per bin and axis);
        ``aligned=True`` shifts the box by -0.5 (half-pixel, Detectron2 / ONNX ``half_pixel``).
        """
        return self._roi("align", input, boxes, output_size, spatial_scale, sampling_ratio, aligned)

    def roi_pool(self, input, boxes, output_size, spatial_scale=1.0):
        """torchvision.ops.roi_pool (Fast R-CNN max pooling over whole cells): ``[K, C, PH, PW]``."""
        return self._roi("pool", input, boxes, output_size, spatial_scale)

    def roi_warp(self, input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
        """RoI Warp (MNC): the box snapped to the grid, then RoI Align on the snapped box.

        Not in torchvision; same arguments and defaults as :meth:`roi_align` so the two swap.
        """
        return self._roi("warp", input, boxes, output_size, spatial_scale, sampling_ratio, aligned)

    def ps_roi_align(self, input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1):
        """torchvision.ops.ps_roi_align (R-FCN): ``[K, C / (PH * PW), PH, PW]``.

        Bin ``(ph, pw)`` of output channel ``c`` reads input channel ``(c * PH + ph) * PW + pw``; the box
        is shifted by -0.5 (always, as torchvision). ``sampling_ratio <= 0`` is adaptive.
        """
        size = _size(output_size)
        return self._v2_roi(
            "ps_roi_align",
            input,
            boxes,
            {"spatial_scale": float(spatial_scale), **_oip_size(size), "sampling_ratio": int(sampling_ratio)},
        )

    def ps_roi_pool(self, input, boxes, output_size, spatial_scale=1.0):
        """torchvision.ops.ps_roi_pool (R-FCN): mean of each bin's whole cells, ``[K, C / (PH * PW), PH, PW]``."""
        return self._v2_roi(
            "ps_roi_pool", input, boxes, {"spatial_scale": float(spatial_scale), **_oip_size(_size(output_size))}
        )

    def multi_scale_roi_align(self, features, boxes, output_size, spatial_scale, sampling_ratio=-1,
                              canonical_scale=224, canonical_level=4, aligned=False, level_rule="torchvision",
                              return_levels=False):
        """RoI Align over a feature pyramid (FPN), as ``torchvision.ops.MultiScaleRoIAlign``: ``[K, C, PH, PW]``.

        ``features``: the maps ``[N, C, Hi, Wi]``, finest first (a list, or a dict in its order), each
        half the scale of the one before; ``spatial_scale``: the finest map's, a power of two (1/4 for
        P2). Box ``k`` is pooled from level ``floor(canonical_level + log2(sqrt(area) / canonical_scale)
        + 1e-6)``, clamped to the levels given (``level_rule="detectron2"``: detectron2's
        ``assign_boxes_to_levels``). ``aligned=False`` as torchvision's. ``return_levels=True`` returns
        ``(pooled, levels)``, ``levels`` the int64 ``k`` of each box (its map's scale is ``2**-k``).
        """
        maps = list(features.values()) if isinstance(features, dict) else list(features)
        if not maps:
            raise ValueError("features: expected a list of [N, C, H, W] maps, finest first; got none")
        inputs = []
        for i, m in enumerate(maps):
            a = _as_numpy(m)
            if a.ndim != 4:
                raise ValueError(f"features[{i}]: expected a 4-D [N, C, H, W] map, got shape {list(a.shape)}")
            inputs.append((f"features_{i}", a.astype("<f4"), "FP32"))
        inputs.append(("rois", _rois(boxes), "FP32"))
        parameters = {
            "spatial_scale": float(spatial_scale),
            **_oip_size(_size(output_size)),
            "sampling_ratio": int(sampling_ratio),
            "aligned": bool(aligned),
            "canonical_box_size": float(canonical_scale),
            "canonical_level": int(canonical_level),
            "level_rule": level_rule,
        }
        out = self._infer("multiscale_roi_align", inputs, parameters)
        pooled = _like(out["pooled"], maps[0])
        if not return_levels:
            return pooled
        levels = out["levels"].astype(np.int64)
        if _is_torch(maps[0]):
            import torch

            levels = torch.from_numpy(levels).to(device=maps[0].device)
        return pooled, levels

    # --- images ------------------------------------------------------------------------------------

    def from_image(self, image, boxes, op="align", output_size=7, sampling_ratio=None, aligned=None,
                   box_format=None, normalized=None, max_side=None, pyramid=None):
        """The server's backbone runs on ``image`` (a path or encoded bytes), then ``op`` on ``boxes``.

        ``boxes`` are image pixels, ``[K, 4]`` (or ``[K, 5]`` with batch index 0). Returns a numpy
        ``[K, C, PH, PW]`` array. ``None`` leaves a parameter at the server's default (for images:
        ``samplingRatio`` 2, ``aligned`` true; see README's ``/v1/roi`` table). ``pyramid=True`` pools
        each box from its level of the backbone's feature pyramid (the built-in one: strides 8, 16, 32).
        """
        fields = {
            "boxes": _boxes_rows(boxes, need_batch=False),
            "ops": [op],
            "outputSize": _size(output_size),
            "samplingRatio": None if sampling_ratio is None else int(sampling_ratio),
            "aligned": None if aligned is None else bool(aligned),
            "boxFormat": box_format,
            "normalized": None if normalized is None else bool(normalized),
            "maxSide": max_side,
            "pyramid": None if pyramid is None else bool(pyramid),
            "format": "npy",
        }
        data = self._post("/v1/roi", fields, {"image": ("image", _read(image))})
        return np.load(io.BytesIO(data), allow_pickle=False)

    def image_features(self, image, max_side=None):
        """The backbone's feature map ``[1, C, ceil(H/16), ceil(W/16)]`` of an image (numpy)."""
        data = self._post("/v1/features", {"format": "npy", "maxSide": max_side}, {"image": ("image", _read(image))})
        return np.load(io.BytesIO(data), allow_pickle=False)

    def diff(self, image_or_features, boxes, output_size=7, spatial_scale=None, sampling_ratio=None,
             aligned=None, channel=None, max_boxes=None, image_size=None):
        """The PNG sheet (bytes) of what RoI Pool, Align and Warp keep, lose and gain per box.

        ``image_or_features``: an image (path or encoded bytes), or a ``[N, C, H, W]`` map (numpy /
        torch; then ``spatial_scale`` is required, ``image_size`` = ``(width, height)`` optional).
        """
        if isinstance(image_or_features, (str, bytes, bytearray, os.PathLike)):
            files = {"image": ("image", _read(image_or_features))}
        else:
            files = {"features": ("features.npy", _npy_bytes(_as_numpy(image_or_features)))}
        fields = {
            "boxes": _boxes_rows(boxes, need_batch="features" in files),
            "outputSize": _size(output_size),
            "spatialScale": None if spatial_scale is None else float(spatial_scale),
            "samplingRatio": None if sampling_ratio is None else int(sampling_ratio),
            "aligned": None if aligned is None else bool(aligned),
            "channel": channel,
            "maxBoxes": max_boxes,
            "imageSize": None if image_size is None else [int(image_size[0]), int(image_size[1])],
            "format": "png",
        }
        return self._post("/v1/diff", fields, files)


def _caller_level():
    """``stacklevel`` of the first frame outside this file: a warning points at the caller's line."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


def _read(image):
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    with open(image, "rb") as f:
        return f.read()


_default = None


def _client():
    global _default
    url = os.environ.get("ROISERVE_URL") or DEFAULT_URL
    if _default is None or _default.url != url.rstrip("/"):
        _default = Client(url, os.environ.get("ROISERVE_API_KEY"))
    return _default


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """:meth:`Client.roi_align` on the default client (``$ROISERVE_URL``)."""
    return _client().roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned)


def roi_pool(input, boxes, output_size, spatial_scale=1.0):
    """:meth:`Client.roi_pool` on the default client (``$ROISERVE_URL``)."""
    return _client().roi_pool(input, boxes, output_size, spatial_scale)


def roi_warp(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """:meth:`Client.roi_warp` on the default client (``$ROISERVE_URL``)."""
    return _client().roi_warp(input, boxes, output_size, spatial_scale, sampling_ratio, aligned)


def ps_roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1):
    """:meth:`Client.ps_roi_align` on the default client (``$ROISERVE_URL``)."""
    return _client().ps_roi_align(input, boxes, output_size, spatial_scale, sampling_ratio)


def ps_roi_pool(input, boxes, output_size, spatial_scale=1.0):
    """:meth:`Client.ps_roi_pool` on the default client (``$ROISERVE_URL``)."""
    return _client().ps_roi_pool(input, boxes, output_size, spatial_scale)


def multi_scale_roi_align(features, boxes, output_size, spatial_scale, sampling_ratio=-1, **kwargs):
    """:meth:`Client.multi_scale_roi_align` on the default client (``$ROISERVE_URL``)."""
    return _client().multi_scale_roi_align(features, boxes, output_size, spatial_scale, sampling_ratio, **kwargs)


def from_image(image, boxes, **kwargs):
    """:meth:`Client.from_image` on the default client (``$ROISERVE_URL``)."""
    return _client().from_image(image, boxes, **kwargs)


def image_features(image, **kwargs):
    """:meth:`Client.image_features` on the default client (``$ROISERVE_URL``)."""
    return _client().image_features(image, **kwargs)


def diff(image_or_features, boxes, **kwargs):
    """:meth:`Client.diff` on the default client (``$ROISERVE_URL``)."""
    return _client().diff(image_or_features, boxes, **kwargs)
