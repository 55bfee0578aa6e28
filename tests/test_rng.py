"""A1111 noise: the NV Philox generator, per-image seeds, variation seeds, seed resize, ENSD."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sd1kit.errors import Sd1kitError
from sd1kit.rng import ImageRNG, PhiloxGenerator, randn

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = json.loads((FIXTURES / "a1111_philox_nv_rng.json").read_text())
DERIVED = json.loads((FIXTURES / "a1111_nv_rng_vectors.json").read_text())


def test_published_values():
    """A1111's published NV values (rng_philox.py docstring; mlimgsynth's C port). Those were printed from CUDA /
    double-precision Box-Muller; A1111's own numpy code, which we follow bit for bit, differs by < 3e-7."""
    g = PhiloxGenerator(SHARED["cases"][0]["seed"])
    np.testing.assert_allclose(g.randn((3, 4)), SHARED["cases"][0]["expected"], atol=1e-6)
    np.testing.assert_allclose(PhiloxGenerator(0).randn((12,)), SHARED["cases"][1]["expected_flat"], atol=1e-6)


@pytest.mark.parametrize("case", DERIVED["cases"], ids=lambda c: str(c["seed"]))
def test_equal_to_a1111_code_path(case):
    g = PhiloxGenerator(case["seed"])
    for call in case["calls"]:
        assert g.offset == call["offset"]
        np.testing.assert_array_equal(g.randn(tuple(call["shape"])), np.array(call["values"], dtype=np.float32))


@pytest.mark.parametrize("source", ["CPU", "NV", "GPU"])
def test_image_i_of_a_batch_equals_its_seed_alone(source):
    batch = ImageRNG((4, 8, 8), [100, 101, 102], source=source, eta_noise_seed_delta=31337)
    first, later = batch.first(), [batch.next() for _ in range(3)]
    for i, seed in enumerate([100, 101, 102]):
        alone = ImageRNG((4, 8, 8), [seed], source=source, eta_noise_seed_delta=31337)
        assert torch.equal(alone.first()[0], first[i])
        for step in later:
            assert torch.equal(alone.next()[0], step[i])


def test_cpu_source_is_torch_cpu_randn():
    expected = torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(1234))
    assert torch.equal(randn(1234, (4, 8, 8), "CPU", torch.device("cpu")), expected)


def test_ensd_reseeds_after_the_first_noise():
    rng = ImageRNG((4, 8, 8), [7], source="CPU", eta_noise_seed_delta=31337)
    rng.first()
    expected = torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(7 + 31337))
    assert torch.equal(rng.next()[0], expected)
    plain = ImageRNG((4, 8, 8), [7], source="CPU")
    plain.first()
    g = torch.Generator().manual_seed(7)
    torch.randn((4, 8, 8), generator=g)
    assert torch.equal(plain.next()[0], torch.randn((4, 8, 8), generator=g))


@pytest.mark.parametrize("source", ["CPU", "NV"])
def test_subseed_strength_endpoints(source):
    base = ImageRNG((4, 8, 8), [5], source=source).first()
    sub = ImageRNG((4, 8, 8), [9], source=source).first()
    at0 = ImageRNG((4, 8, 8), [5], source=source, subseeds=[9], subseed_strength=0.0).first()
    at1 = ImageRNG((4, 8, 8), [5], source=source, subseeds=[9], subseed_strength=1.0).first()
    half = ImageRNG((4, 8, 8), [5], source=source, subseeds=[9], subseed_strength=0.5).first()
    assert torch.equal(at0, base)
    torch.testing.assert_close(at1, sub, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(half, base) and not torch.allclose(half, sub)


def test_seed_resize_pastes_the_old_noise_centred():
    small = ImageRNG((4, 8, 8), [3], source="CPU").first()[0]
    resized = ImageRNG((4, 12, 16), [3], source="CPU", seed_resize_from=(64, 64)).first()[0]
    assert torch.equal(resized[:, 2:10, 4:12], small)
    shrunk = ImageRNG((4, 4, 4), [3], source="CPU", seed_resize_from=(64, 64)).first()[0]
    assert torch.equal(shrunk, small[:, 2:6, 2:6])


def test_unknown_source_is_a_clear_error():
    with pytest.raises(Sd1kitError, match="RNG"):
        ImageRNG((4, 8, 8), [1], source="TPU")
