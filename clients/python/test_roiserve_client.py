"""Tests of roiserve_client against a live server at $ROISERVE_URL (run by test/clients/python.test.ts).

The results must equal torchvision.ops.roi_align (<= 1e-5) and roi_pool (exactly), ps_roi_align (<= 1e-5),
ps_roi_pool (exactly) and MultiScaleRoIAlign (<= 1e-5, and its levels) on the same seeded inputs; torch
parts are skipped when torch / torchvision are not installed.
"""

import os
import sys
import unittest
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roiserve_client as rs  # noqa: E402

try:
    import torch
    import torchvision.ops as tv
except ImportError:  # the HTTP parts still run
    torch = None
    tv = None

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures")
needs_torch = unittest.skipIf(torch is None, "torch / torchvision not installed")


def setUpModule():
    # Random boxes reach past the map on purpose: keep the server's box-outside warnings out of the log
    # (test_server_warnings_become_python_warnings checks them). Here, not at import: unittest's runner
    # resets the filters when it starts.
    warnings.simplefilter("ignore", rs.RoiserveWarning)


def random_case(seed, n=2, c=3, h=13, w=17, k=12, scale=0.5):
    """A seeded float32 map [n, c, h, w] and [k, 5] boxes in image pixels (map / scale), some past the edges."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, c, h, w)).astype(np.float32)
    iw, ih = w / scale, h / scale
    x1 = rng.uniform(-0.2 * iw, iw, k)
    y1 = rng.uniform(-0.2 * ih, ih, k)
    bw = rng.uniform(0, 0.8 * iw, k)
    bh = rng.uniform(0, 0.8 * ih, k)
    b = np.stack([rng.integers(0, n, k), x1, y1, x1 + bw, y1 + bh], axis=1).astype(np.float32)
    b[0, 1:] = [0, 0, iw, ih]  # the whole map
    b[1, 1:] = [3.5, 2.5, 3.5, 2.5]  # zero size: torchvision's 1-cell minimum / empty bins
    b[2, 1:] = [2.5, 4.5, 9.5, 11.5]  # .5 corners: round half away from zero
    return x, b


class AgainstTorchvision(unittest.TestCase):
    @needs_torch
    def test_roi_align_equals_torchvision(self):
        for seed, (aligned, sampling, size, scale) in enumerate(
            [(False, -1, 7, 0.5), (True, -1, 7, 0.5), (False, 2, (3, 5), 0.25), (True, 0, 2, 1.0), (False, 1, 1, 0.125)]
        ):
            with self.subTest(aligned=aligned, sampling_ratio=sampling, output_size=size, spatial_scale=scale):
                x, b = random_case(seed, scale=scale)
                got = rs.roi_align(x, b, size, spatial_scale=scale, sampling_ratio=sampling, aligned=aligned)
                want = tv.roi_align(torch.from_numpy(x), torch.from_numpy(b), size, scale, sampling, aligned).numpy()
                self.assertIsInstance(got, np.ndarray)
                self.assertEqual(got.shape, want.shape)
                self.assertLessEqual(float(np.abs(got - want).max()), 1e-5)

    @needs_torch
    def test_roi_pool_equals_torchvision_exactly(self):
        for seed, (size, scale) in enumerate([(7, 0.5), ((3, 5), 0.25), (2, 1.0), (4, 0.0625)]):
            with self.subTest(output_size=size, spatial_scale=scale):
                x, b = random_case(100 + seed, scale=scale)
                got = rs.roi_pool(x, b, size, scale)
                want = tv.roi_pool(torch.from_numpy(x), torch.from_numpy(b), size, scale).numpy()
                self.assertEqual(got.shape, want.shape)
                np.testing.assert_array_equal(got, want)

    @needs_torch
    def test_torch_in_torch_out_and_per_image_lists(self):
        x, b = random_case(7)
        xt, bt = torch.from_numpy(x), torch.from_numpy(b)
        per_image = [bt[bt[:, 0] == i, 1:] for i in range(x.shape[0])]
        order = torch.cat([torch.nonzero(bt[:, 0] == i).flatten() for i in range(x.shape[0])])
        got = rs.roi_align(xt, per_image, 5, 0.5, 2)
        self.assertIsInstance(got, torch.Tensor)
        self.assertEqual(got.dtype, torch.float32)
        want = tv.roi_align(xt, per_image, 5, 0.5, 2)
        self.assertLessEqual(float((got - want).abs().max()), 1e-5)
        # the per-image list is the [K, 5] rows grouped by image
        self.assertTrue(torch.equal(got, rs.roi_align(xt, bt[order], 5, 0.5, 2)))
        pooled = rs.roi_pool(xt, per_image, (2, 3), 0.5)
        self.assertIsInstance(pooled, torch.Tensor)
        self.assertTrue(torch.equal(pooled, tv.roi_pool(xt, per_image, (2, 3), 0.5)))
        # float64 in: computed in float32, returned as float64
        got64 = rs.roi_pool(xt.double(), bt.double(), 2, 0.5)
        self.assertEqual(got64.dtype, torch.float64)


def pyramid_case(seed, n=2, c=3, image=(512, 640), levels=4, k=40):
    """Seeded maps P2.. (scale 1/4, 1/8, …) of an ``image`` (h, w) and [k, 5] boxes of 4..600 px sides."""
    rng = np.random.default_rng(seed)
    ih, iw = image
    maps = [
        rng.uniform(-2, 2, size=(n, c, ih // 2 ** (2 + i), iw // 2 ** (2 + i))).astype(np.float32)
        for i in range(levels)
    ]
    side = np.exp(rng.uniform(np.log(4), np.log(600), k))
    aspect = np.exp(rng.uniform(-0.7, 0.7, k))
    bw, bh = side * aspect, side / aspect
    x1, y1 = rng.uniform(-20, iw - 20, k), rng.uniform(-20, ih - 20, k)
    b = np.stack([rng.integers(0, n, k), x1, y1, x1 + bw, y1 + bh], axis=1).astype(np.float32)
    b[0, 1:] = [10, 20, 234, 244]  # 224 x 224: level 4
    b[1, 1:] = [0, 0, 112, 112]  # level 3
    return maps, b


class PositionSensitiveAndPyramid(unittest.TestCase):
    """ps_roi_align, ps_roi_pool and multi_scale_roi_align (over /v2) against torchvision.ops."""

    @needs_torch
    def test_ps_roi_align_equals_torchvision(self):
        for seed, (sampling, size, scale) in enumerate([(-1, 3, 0.5), (2, (2, 3), 0.25), (1, 1, 1.0), (0, 2, 0.125)]):
            with self.subTest(sampling_ratio=sampling, output_size=size, spatial_scale=scale):
                ph, pw = (size, size) if isinstance(size, int) else size
                x, b = random_case(200 + seed, c=2 * ph * pw, scale=scale)
                got = rs.ps_roi_align(x, b, size, spatial_scale=scale, sampling_ratio=sampling)
                want = tv.ps_roi_align(torch.from_numpy(x), torch.from_numpy(b), size, scale, sampling).numpy()
                self.assertIsInstance(got, np.ndarray)
                self.assertEqual(got.shape, (len(b), 2, ph, pw))
                # An empty adaptive grid (the zero-size box) is 0/0 in torchvision (NaN); the server gives 0.
                empty = np.isnan(want)
                np.testing.assert_array_equal(got[empty], 0)
                self.assertLessEqual(float(np.abs(got - want)[~empty].max()), 1e-5)

    @needs_torch
    def test_ps_roi_pool_equals_torchvision_exactly(self):
        for seed, (size, scale) in enumerate([(3, 0.5), ((2, 3), 0.25), (2, 1.0), (1, 0.0625)]):
            with self.subTest(output_size=size, spatial_scale=scale):
                ph, pw = (size, size) if isinstance(size, int) else size
                x, b = random_case(300 + seed, c=3 * ph * pw, scale=scale)
                got = rs.ps_roi_pool(x, b, size, scale)
                want = tv.ps_roi_pool(torch.from_numpy(x), torch.from_numpy(b), size, scale).numpy()
                self.assertEqual(got.shape, want.shape)
                np.testing.assert_array_equal(got, want)

    @needs_torch
    def test_multi_scale_roi_align_equals_torchvision(self):
        for seed, (size, sampling, canonical) in enumerate([(7, 2, (224, 4)), ((3, 5), -1, (224, 4)), (2, 1, (64, 3))]):
            with self.subTest(output_size=size, sampling_ratio=sampling, canonical=canonical):
                maps, b = pyramid_case(400 + seed)
                n = maps[0].shape[0]
                names = [f"p{i + 2}" for i in range(len(maps))]
                tmaps = {name: torch.from_numpy(m) for name, m in zip(names, maps)}
                per_image = [torch.from_numpy(b[b[:, 0] == i, 1:]) for i in range(n)]
                pooler = tv.MultiScaleRoIAlign(
                    names, size, sampling, canonical_scale=canonical[0], canonical_level=canonical[1]
                )
                want = pooler(tmaps, per_image, [(512, 640)] * n)
                # torch in, torch out; a dict is read in its order, like torchvision's
                got, levels = rs.multi_scale_roi_align(
                    tmaps, per_image, size, 1 / 4, sampling, canonical_scale=canonical[0],
                    canonical_level=canonical[1], return_levels=True,
                )
                self.assertIsInstance(got, torch.Tensor)
                self.assertEqual(got.shape, want.shape)
                self.assertLessEqual(float((got - want).abs().max()), 1e-5)
                # levels are absolute (P2 = 2): torchvision's LevelMapper gives indices from the finest
                want_levels = pooler.map_levels(per_image) + 2
                self.assertTrue(torch.equal(levels, want_levels.to(torch.int64)), (levels, want_levels))
                self.assertGreater(len(set(levels.tolist())), 2)  # the boxes do span the pyramid

    def test_numpy_in_numpy_out_and_per_image_lists(self):
        x, b = random_case(9, c=2 * 4)
        per_image = [b[b[:, 0] == i, 1:] for i in range(x.shape[0])]
        grouped = np.concatenate([b[b[:, 0] == i] for i in range(x.shape[0])])
        got = rs.ps_roi_pool(x, per_image, 2, 0.5)
        self.assertIsInstance(got, np.ndarray)
        self.assertEqual(got.dtype, np.float32)
        self.assertEqual(got.shape, (len(b), 2, 2, 2))
        np.testing.assert_array_equal(got, rs.ps_roi_pool(x, grouped, 2, 0.5))
        client = rs.Client(os.environ.get("ROISERVE_URL"))
        got = client.ps_roi_align(x.astype(np.float64), b, (2, 2), 0.5, 2)
        self.assertEqual(got.dtype, np.float64)
        maps, pb = pyramid_case(10, levels=3, k=6)
        pooled, levels = client.multi_scale_roi_align(maps, pb, 2, 0.25, 2, return_levels=True)
        self.assertIsInstance(pooled, np.ndarray)
        self.assertEqual(pooled.shape, (6, maps[0].shape[1], 2, 2))
        self.assertEqual(levels.dtype, np.int64)
        self.assertTrue(set(levels.tolist()) <= {2, 3, 4})
        self.assertEqual(levels[0], 4)  # the 224 x 224 box
        # one level only: RoI Align on it (aligned=False by default, as torchvision's pooler)
        only = rs.multi_scale_roi_align(maps[:1], pb, 2, 0.25, 2)
        np.testing.assert_allclose(only, rs.roi_align(maps[0], pb, 2, 0.25, 2, aligned=False), atol=1e-6)

    def test_v2_errors_raise_with_status_and_detail(self):
        x, b = random_case(11, c=5)  # 5 channels: not a multiple of 2 x 2
        with self.assertRaises(rs.RoiserveError) as ctx:
            rs.ps_roi_align(x, b, 2, 0.5)
        e = ctx.exception
        self.assertEqual(e.status, 400)
        self.assertIn("features", e.detail)
        self.assertIn(e.detail, str(e))
        maps, pb = pyramid_case(12, levels=2, k=3)
        with self.assertRaises(rs.RoiserveError) as ctx:
            rs.multi_scale_roi_align(maps, pb, 2, 0.3)  # not a power of two
        self.assertEqual(ctx.exception.status, 400)
        self.assertIn("spatial_scale", ctx.exception.detail)
        pb[0, 0] = 7  # batch index past N
        with self.assertRaises(rs.RoiserveError) as ctx:
            rs.ps_roi_pool(x[:, :4], pb, 2, 0.5)
        self.assertEqual(ctx.exception.status, 400)
        self.assertIn("rois", ctx.exception.detail)


class Http(unittest.TestCase):
    def test_numpy_in_numpy_out_and_per_image_numpy_lists(self):
        x, b = random_case(3)
        got = rs.roi_align(x, b, 3, 0.5)
        self.assertIsInstance(got, np.ndarray)
        self.assertEqual(got.dtype, np.float32)
        self.assertEqual(got.shape, (len(b), x.shape[1], 3, 3))
        per_image = [b[b[:, 0] == i, 1:] for i in range(x.shape[0])]
        grouped = np.concatenate([b[b[:, 0] == i] for i in range(x.shape[0])])
        np.testing.assert_array_equal(rs.roi_pool(x, per_image, 3, 0.5), rs.roi_pool(x, grouped, 3, 0.5))
        self.assertEqual(rs.roi_align(x.astype(np.float64), b, 3, 0.5).dtype, np.float64)

    def test_roi_warp_and_client_object(self):
        x, b = random_case(4)
        client = rs.Client(os.environ.get("ROISERVE_URL"))
        warp = client.roi_warp(x, b, (2, 4), 0.5, sampling_ratio=2)
        self.assertEqual(warp.shape, (len(b), x.shape[1], 2, 4))
        # the whole-map box is snapped to itself: warp equals align there
        align = client.roi_align(x, b, (2, 4), 0.5, sampling_ratio=2)
        np.testing.assert_allclose(warp[0], align[0], atol=1e-6)

    def test_error_raises_with_problem_fields(self):
        x, b = random_case(5)
        with self.assertRaises(rs.RoiserveError) as ctx:
            rs.roi_align(x, b, 0, 0.5)
        e = ctx.exception
        self.assertEqual(e.status, 400)
        self.assertEqual(e.type, "urn:roiserve:problem:invalid-input")
        self.assertIn("outputSize", [err.get("field") for err in e.errors])
        self.assertIn("outputSize", str(e))
        # a batch index past N is refused by the server too, naming the boxes
        b[0, 0] = 5
        with self.assertRaises(rs.RoiserveError) as ctx:
            rs.roi_pool(x, b, 2, 0.5)
        self.assertEqual(ctx.exception.status, 400)
        self.assertIn("boxes", ctx.exception.detail)

    def test_bad_boxes_shape_is_refused_locally(self):
        x, _ = random_case(6)
        with self.assertRaisesRegex(ValueError, r"boxes: expected \[K, 5\]"):
            rs.roi_align(x, np.zeros((3, 4), np.float32), 2)

    def test_from_image_features_and_diff(self):
        photo = os.path.join(FIXTURES, "photo.jpg")
        out = rs.from_image(photo, [[96, 56, 224, 144], [0, 0, 320, 240]], op="pool", output_size=3)
        self.assertEqual(out.shape, (2, 256, 3, 3))
        with open(photo, "rb") as f:
            data = f.read()
        # the image's feature map sent back as features gives the same numbers as the image
        fmap = rs.image_features(data)
        self.assertEqual(fmap.shape[:2], (1, 256))
        again = rs.roi_pool(fmap, [[0, 96, 56, 224, 144], [0, 0, 0, 320, 240]], 3, 1 / 16)
        np.testing.assert_array_equal(out, again)
        png = rs.diff(data, [[40, 60, 300, 280]])
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        png = rs.diff(fmap, [[0, 40, 60, 300, 280]], spatial_scale=1 / 16, output_size=3)
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")

    def test_server_warnings_become_python_warnings(self):
        x, _ = random_case(8)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            rs.roi_align(x, np.array([[0, 500, 500, 600, 600]], np.float32), 2, 0.5)
        ours = [w for w in seen if issubclass(w.category, rs.RoiserveWarning)]
        self.assertTrue(any("box-outside" in str(w.message) for w in ours))
        self.assertEqual(ours[0].filename, __file__)  # points at the caller's line, not the client's

    def test_every_optional_field_is_accepted_by_the_server(self):
        # the server refuses unknown fields (400): each name the client sends must be the API's
        photo = os.path.join(FIXTURES, "photo.jpg")
        out = rs.from_image(
            photo, [[0.1, 0.1, 0.5, 0.5]], op="warp", output_size=(2, 3), sampling_ratio=0, aligned=True,
            box_format="xywh", normalized=True, max_side=320,
        )
        self.assertEqual(out.shape, (1, 256, 2, 3))
        # the built-in pyramid: 64 channels on every level
        out = rs.from_image(photo, [[96, 56, 224, 144]], output_size=2, pyramid=True)
        self.assertEqual(out.shape, (1, 64, 2, 2))
        fmap = rs.image_features(photo, max_side=320)
        self.assertEqual(fmap.shape[:2], (1, 256))
        png = rs.diff(
            fmap, [[0, 40, 60, 300, 280], [0, 0, 0, 100, 100]], output_size=3, spatial_scale=1 / 16,
            sampling_ratio=1, aligned=False, channel=5, max_boxes=1, image_size=(320, 240),
        )
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
