"""dlbook.augment, tested against definitions: flips, crops, rotations, HSV, Fancy PCA."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest
import torch

from dlbook import augment as A


@pytest.fixture
def image(rng):
    return rng.random((3, 6, 7))


@pytest.fixture
def batch(rng):
    return rng.random((5, 3, 8, 8))


def test_flips_are_involutions_and_match_torch(image, batch):
    for x in (image, batch):
        np.testing.assert_array_equal(A.hflip(A.hflip(x)), x)
        np.testing.assert_array_equal(A.vflip(A.vflip(x)), x)
        t = torch.from_numpy(x)
        np.testing.assert_array_equal(A.hflip(x), torch.flip(t, dims=[-1]).numpy())
        np.testing.assert_array_equal(A.vflip(x), torch.flip(t, dims=[-2]).numpy())
        assert not np.array_equal(A.hflip(x), x)  # a flip of a random image changes it
        assert not np.array_equal(A.hflip(x), A.vflip(x))


def test_random_flip_probability_and_per_image_draws(batch):
    flipped = A.RandomHorizontalFlip(p=1.0)(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(flipped, A.hflip(batch))
    kept = A.RandomVerticalFlip(p=0.0)(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(kept, batch)
    big = np.random.default_rng(1).random((400, 1, 2, 2))
    out = A.RandomHorizontalFlip(p=0.5)(big, np.random.default_rng(2))
    is_flipped = np.array([np.array_equal(o, A.hflip(b)) for o, b in zip(out, big)])
    is_kept = np.array([np.array_equal(o, b) for o, b in zip(out, big)])
    assert np.all(is_flipped ^ is_kept)  # each image is one or the other
    assert 0.4 < is_flipped.mean() < 0.6


def test_crop_and_random_crop(image, batch):
    np.testing.assert_array_equal(A.crop(image, 1, 2, 3, 4), image[:, 1:4, 2:6])
    with pytest.raises(ValueError, match="does not fit"):
        A.crop(image, 4, 0, 3, 3)
    out = A.RandomCrop(8, padding=1)(batch, np.random.default_rng(3))
    assert out.shape == batch.shape
    padded = np.pad(batch, [(0, 0), (0, 0), (1, 1), (1, 1)])
    for o, p in zip(out, padded):  # every crop is a window of the padded image
        windows = [p[:, i:i + 8, j:j + 8] for i in range(3) for j in range(3)]
        assert sum(np.array_equal(o, w) for w in windows) >= 1
    no_pad = A.RandomCrop(8)(batch, np.random.default_rng(3))
    np.testing.assert_array_equal(no_pad, batch)  # a full-size crop without padding is the image
    with pytest.raises(ValueError, match="larger than the padded image"):
        A.RandomCrop(11, padding=1)(batch, np.random.default_rng(0))


def test_rotation_by_right_angles_equals_rot90(batch):
    for k in (1, 2, 3, -1):
        np.testing.assert_allclose(A.rotate(batch, 90 * k, order=1),
                                   np.rot90(batch, k, axes=(-2, -1)), atol=1e-12)
    assert not np.allclose(A.rotate(batch, 90), np.rot90(batch, -1, axes=(-2, -1)))
    np.testing.assert_allclose(A.rotate(batch, 0.0), batch, atol=1e-12)
    # a small rotation keeps the centre pixel of an odd-sized image where it is
    x = np.zeros((1, 5, 5))
    x[0, 2, 2] = 1.0
    assert A.rotate(x, 17.0)[0, 2, 2] == pytest.approx(1.0)


def test_rescale(image):
    np.testing.assert_allclose(A.rescale(image, 1.0), image, atol=1e-12)
    doubled = A.rescale(image, 2.0, keep_size=False, order=0)
    np.testing.assert_array_equal(doubled, image.repeat(2, axis=-2).repeat(2, axis=-1))
    small = A.rescale(image, 0.5)  # zoomed out and zero-padded back to (6, 7)
    assert small.shape == image.shape
    assert np.all(small[:, 0, :] == 0) and np.all(small[:, :, 0] == 0)
    big = A.rescale(image, 1.3)
    assert big.shape == image.shape and not np.allclose(big, image)
    with pytest.raises(ValueError, match="factor"):
        A.rescale(image, 0.0)


def test_hsv_matches_matplotlib_and_round_trips(rng):
    x = rng.random((2, 3, 5, 4))
    x[0, :, 0, 0] = 0.0  # black: hue and saturation 0
    x[0, :, 0, 1] = 0.6  # grey: saturation 0
    x[1, :, 1, 1] = [0.9, 0.9, 0.2]  # ties between the largest channels
    hsv = A.rgb_to_hsv(x)
    np.testing.assert_allclose(np.moveaxis(hsv, -3, -1), mcolors.rgb_to_hsv(np.moveaxis(x, -3, -1)),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.moveaxis(A.hsv_to_rgb(hsv), -3, -1),
                               mcolors.hsv_to_rgb(np.moveaxis(hsv, -3, -1)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(A.hsv_to_rgb(hsv), x, atol=1e-12)
    assert not np.allclose(hsv, x)


def test_color_jitter(batch):
    np.testing.assert_allclose(A.ColorJitter(0, 0, 0)(batch, np.random.default_rng(0)), batch,
                               atol=1e-12)
    out = A.ColorJitter(hue=0.0, saturation=0.0, value=0.5)(batch, np.random.default_rng(4))
    hsv_in, hsv_out = A.rgb_to_hsv(batch), A.rgb_to_hsv(out)
    np.testing.assert_allclose(hsv_out[:, :2], hsv_in[:, :2], atol=1e-10)  # H and S unchanged
    ratio = hsv_out[:, 2] / hsv_in[:, 2]
    unclipped = hsv_out[:, 2] < 1
    for r, keep in zip(ratio, unclipped):  # one brightness factor per image
        assert np.ptp(r[keep]) < 1e-10 and 0.5 <= r[keep][0] <= 1.5
    assert out.min() >= 0 and out.max() <= 1
    assert not np.allclose(out, batch)


def test_rgb_pca_eigenvalues_sum_to_the_trace(batch):
    lam, vecs = A.rgb_pca(batch)
    pixels = np.moveaxis(batch, 1, -1).reshape(-1, 3)
    cov = np.cov(pixels.T, bias=True)
    assert lam.sum() == pytest.approx(np.trace(cov), rel=1e-12)
    np.testing.assert_allclose(cov @ vecs, vecs * lam, atol=1e-14)
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(3), atol=1e-14)
    assert np.all(np.diff(lam) <= 0)


def test_fancy_pca_adds_one_constant_offset_per_image(batch):
    lam, vecs = A.rgb_pca(batch)
    alpha = np.array([[0.1, -0.05, 0.2]] * 5) * np.arange(1, 6)[:, None]
    out = A.fancy_pca(batch, lam, vecs, alpha)
    delta = out - batch
    for n in range(5):
        expected = vecs @ (alpha[n] * lam)  # [p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T
        np.testing.assert_allclose(delta[n], np.broadcast_to(expected[:, None, None], (3, 8, 8)),
                                   rtol=1e-12, atol=1e-15)
        # in the eigenbasis the offset is alpha * lambda
        np.testing.assert_allclose(vecs.T @ delta[n, :, 0, 0], alpha[n] * lam, rtol=1e-10,
                                   atol=1e-16)
    assert not np.allclose(delta[0], delta[1])
    t = A.FancyPCA(std=0.1).fit(batch)
    out1 = t(batch, np.random.default_rng(7))
    out2 = t(batch, np.random.default_rng(7))
    np.testing.assert_array_equal(out1, out2)
    drawn = np.random.default_rng(7).normal(0, 0.1, (5, 3))
    np.testing.assert_allclose(out1, A.fancy_pca(batch, lam, vecs, drawn), rtol=1e-14)
    with pytest.raises(ValueError, match=r"alpha: expected shape \(5, 3\)"):
        A.fancy_pca(batch, lam, vecs, np.zeros(3))


def test_compose_is_deterministic_under_a_seed_and_works_on_one_image(batch):
    augment = A.Compose([A.RandomCrop(8, padding=1), A.RandomHorizontalFlip(),
                         A.RandomRotation(15), A.RandomScale((0.9, 1.1)), A.ColorJitter(),
                         A.FancyPCA(std=0.1).fit(batch)])
    one = augment(batch, np.random.default_rng(11))
    two = augment(batch, np.random.default_rng(11))
    np.testing.assert_array_equal(one, two)
    other = augment(batch, np.random.default_rng(12))
    assert one.shape == batch.shape and not np.allclose(one, other)
    assert augment(batch[0], np.random.default_rng(0)).shape == (3, 8, 8)
    # composing two flips that always fire is the identity
    twice = A.Compose([A.RandomHorizontalFlip(1.0), A.RandomHorizontalFlip(1.0)])
    np.testing.assert_array_equal(twice(batch, np.random.default_rng(0)), batch)


def test_arguments_unmodified(batch):
    copy = batch.copy()
    rng = np.random.default_rng(0)
    for t in (A.RandomHorizontalFlip(1.0), A.RandomCrop(6, 1), A.RandomRotation(20),
              A.RandomScale(), A.ColorJitter(), A.FancyPCA().fit(batch)):
        t(batch, rng)
    A.hflip(batch), A.rotate(batch, 30), A.rescale(batch, 1.2)
    np.testing.assert_array_equal(batch, copy)


def test_bad_input(image):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"x: expected an image \(C, H, W\)"):
        A.hflip(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="3 colour channels"):
        A.ColorJitter()(np.zeros((1, 4, 4)), rng)
    with pytest.raises(ValueError, match="rng"):
        A.RandomRotation(10)(image, 0)
    with pytest.raises(ValueError, match="p: expected a probability"):
        A.RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="scale"):
        A.RandomScale((1.2, 0.8))
    with pytest.raises(ValueError, match="hue"):
        A.ColorJitter(hue=0.7)
    with pytest.raises(RuntimeError, match="fit"):
        A.FancyPCA()(image, rng)


def test_window_sums_match_an_all_ones_convolution(rng):
    heat = rng.random((3, 7, 9))
    ref = torch.nn.functional.conv2d(torch.from_numpy(heat)[:, None],
                                     torch.ones(1, 1, 4, 3, dtype=torch.float64))[:, 0].numpy()
    np.testing.assert_allclose(A.window_sums(heat, (4, 3)), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(A.window_sums(heat, 1), heat, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(A.window_sums(heat, (7, 9)), heat.sum(axis=(1, 2))[:, None, None],
                               rtol=1e-10, atol=1e-12)
    assert not np.allclose(A.window_sums(heat, (4, 3))[:, 1:], ref[:, :-1])  # a shift fails


def test_sample_crops_cuts_the_drawn_window_and_follows_the_weights():
    rng = np.random.default_rng(0)
    x = rng.random((500, 2, 6, 7))
    crops, corners = A.sample_crops(x, np.ones((500, 3, 3)), (4, 5), np.random.default_rng(1))
    assert crops.shape == (500, 2, 4, 5) and corners.shape == (500, 2)
    for crop, image, (t, l) in zip(crops, x, corners):
        np.testing.assert_array_equal(crop, image[:, t:t + 4, l:l + 5])
    counts = np.bincount(corners[:, 0] * 3 + corners[:, 1], minlength=9)
    assert counts.min() > 30  # equal weights: every one of the 9 positions, about 56 times each
    # weights 0 except two positions, one three times the other
    weights = np.zeros((500, 3, 3))
    weights[:, 0, 2], weights[:, 2, 1] = 1.0, 3.0
    _, corners = A.sample_crops(x, weights, (4, 5), np.random.default_rng(2))
    at_21 = np.all(corners == [2, 1], axis=1)
    assert np.all(at_21 | np.all(corners == [0, 2], axis=1))  # never where the weight is 0
    assert 0.70 < at_21.mean() < 0.80  # P = 3/4
    assert not 0.45 < at_21.mean() < 0.55  # negative case: not the equal split
    one = np.zeros((500, 3, 3))
    one[:, 1, 1] = 5.0
    crops, corners = A.sample_crops(x, one, (4, 5), np.random.default_rng(3))
    np.testing.assert_array_equal(corners, np.ones((500, 2), dtype=int))
    np.testing.assert_array_equal(crops, x[:, :, 1:5, 1:6])


def test_sample_crops_is_repeatable_and_leaves_its_arguments_alone(batch):
    weights = np.random.default_rng(5).random((5, 3, 3))
    x0, w0 = batch.copy(), weights.copy()
    a = A.sample_crops(batch, weights, 6, np.random.default_rng(7))
    b = A.sample_crops(batch, weights, 6, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    a[0][...] = -1.0  # the crops are copies, not views of the images
    np.testing.assert_array_equal(batch, x0)
    np.testing.assert_array_equal(weights, w0)
    heat = weights.copy()
    A.window_sums(heat, 2)
    np.testing.assert_array_equal(heat, w0)


def test_supervised_crop_bad_input(batch):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"heat: expected a 3-D array \(N, H, W\)"):
        A.window_sums(np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="size: expected a window inside"):
        A.window_sums(np.zeros((1, 4, 4)), 5)
    with pytest.raises(ValueError, match=r"x: expected a batch \(N, C, H, W\)"):
        A.sample_crops(batch[0], np.ones((3, 3)), 6, rng)
    with pytest.raises(ValueError, match=r"weights: expected shape \(5, 3, 3\)"):
        A.sample_crops(batch, np.ones((5, 2, 2)), 6, rng)
    with pytest.raises(ValueError, match=r"size: expected a window inside \(8, 8\)"):
        A.sample_crops(batch, np.ones((5, 1, 1)), 9, rng)
    with pytest.raises(ValueError, match=r"size: expected a window inside \(8, 8\)"):
        A.sample_crops(batch, np.ones((5, 9, 9)), 0, rng)
    with pytest.raises(ValueError, match="N = 0"):
        A.sample_crops(batch[:0], np.ones((0, 3, 3)), 6, rng)
    for bad in (np.nan, np.inf):
        weights = np.ones((5, 3, 3))
        weights[2, 0, 0] = bad
        with pytest.raises(ValueError, match="weights: expected finite values"):
            A.sample_crops(batch, weights, 6, rng)
    with pytest.raises(ValueError, match="non-negative"):
        A.sample_crops(batch, -np.ones((5, 3, 3)), 6, rng)
    one_negative = np.ones((5, 3, 3))
    one_negative[4, 2, 2] = -0.5  # the sum stays positive, yet one weight is negative
    with pytest.raises(ValueError, match="non-negative"):
        A.sample_crops(batch, one_negative, 6, rng)
    # negative case: the same checks pass finite, non-negative weights and a size inside
    crops, _ = A.sample_crops(batch, np.ones((5, 3, 3)), 6, rng)
    assert crops.shape == (5, batch.shape[1], 6, 6)
    with pytest.raises(ValueError, match="positive sum"):
        A.sample_crops(batch, np.zeros((5, 3, 3)), 6, rng)
    with pytest.raises(ValueError, match="rng"):
        A.sample_crops(batch, np.ones((5, 3, 3)), 6, 0)
